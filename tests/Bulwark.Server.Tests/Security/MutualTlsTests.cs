using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Bulwark.Server.Security;
using Bulwark.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Bulwark.Server.Tests.Security;

public class MutualTlsTests
{
    [Fact]
    public async Task AClientCertificateFromTheCaIsServed()
    {
        var certs = TestCertificates.Create(Fixtures.NewTempDirectory("mtls"));
        await using var server = await TlsServer.StartAsync(MutualTls(certs));
        using var client = server.Client(certs, certs.Client());
        var response = await client.GetStringAsync("/hello");
        Assert.Equal("hello", response);
        Assert.Equal(1, server.Served);
    }

    [Fact]
    public async Task AClientWithoutACertificateIsRefusedAtTheHandshake()
    {
        var certs = TestCertificates.Create(Fixtures.NewTempDirectory("mtls"));
        await using var server = await TlsServer.StartAsync(MutualTls(certs));
        await AssertRefusedAtHandshakeAsync(server, certs, null);
        using var client = server.Client(certs, null);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => client.GetStringAsync("/hello"));
        Assert.Equal(0, server.Served);
    }

    [Fact]
    public async Task AClientCertificateFromAnotherCaIsRefusedAtTheHandshake()
    {
        var certs = TestCertificates.Create(Fixtures.NewTempDirectory("mtls"));
        using var rogueCa = TestCertificates.CreateCa("Rogue CA");
        var rogue = TestCertificates.Issue(rogueCa, "client", serverAuth: false);
        await using var server = await TlsServer.StartAsync(MutualTls(certs));
        await AssertRefusedAtHandshakeAsync(server, certs, rogue);
        using var client = server.Client(certs, rogue);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => client.GetStringAsync("/hello"));
        Assert.Equal(0, server.Served);
    }

    [Fact]
    public async Task ACertificateFromTheCaWithoutClientAuthenticationUseIsRefused()
    {
        var certs = TestCertificates.Create(Fixtures.NewTempDirectory("mtls"));
        var serverOnly = TestCertificates.Issue(certs.Ca, "not-a-client", serverAuth: true);
        await using var server = await TlsServer.StartAsync(MutualTls(certs));
        await AssertRefusedAtHandshakeAsync(server, certs, serverOnly);
        Assert.Equal(0, server.Served);
    }

    [Fact]
    public async Task TlsWithoutMutualAuthenticationServesAnyClient()
    {
        var certs = TestCertificates.Create(Fixtures.NewTempDirectory("tls"));
        await using var server = await TlsServer.StartAsync(new()
        {
            ["Bulwark:Tls:CertificatePath"] = certs.ServerCertPath, ["Bulwark:Tls:KeyPath"] = certs.ServerKeyPath,
        });
        using var client = server.Client(certs, null);
        Assert.Equal("hello", await client.GetStringAsync("/hello"));
    }

    [Fact]
    public void InvalidSettingsAreAllReportedNamingKeyAndValue()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Bulwark:Tls:CertificatePath"] = "/nonexistent/server.pem",
            ["Bulwark:Tls:RequireClientCertificate"] = "true",
            ["Bulwark:Tls:MinimumProtocol"] = "Ssl3",
        }).Build();
        var e = Assert.Throws<InvalidOperationException>(() => KestrelTls.Read(configuration));
        Assert.Contains("Bulwark:Tls:CertificatePath: no file at '/nonexistent/server.pem'", e.Message);
        Assert.Contains("Bulwark:Tls:KeyPath is required with a PEM certificate", e.Message);
        Assert.Contains("Bulwark:Tls:ClientCaPath is required when RequireClientCertificate is true", e.Message);
        Assert.Contains("Bulwark:Tls:MinimumProtocol must be Tls12 or Tls13; got 'Ssl3'", e.Message);
    }

    [Fact]
    public void MutualTlsWithoutTlsIsRefused()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Bulwark:Tls:RequireClientCertificate"] = "true",
        }).Build();
        var e = Assert.Throws<InvalidOperationException>(() => KestrelTls.Read(configuration));
        Assert.Contains("CertificatePath is required", e.Message);
    }

    [Fact]
    public void NoTlsSettingsMeanPlainHttp()
    {
        var options = KestrelTls.Read(new ConfigurationBuilder().Build());
        Assert.False(options.Enabled);
        Assert.Equal("http", KestrelTls.Scheme(options));
    }

    private static Dictionary<string, string?> MutualTls(TestCertificates certs) => new()
    {
        ["Bulwark:Tls:CertificatePath"] = certs.ServerCertPath,
        ["Bulwark:Tls:KeyPath"] = certs.ServerKeyPath,
        ["Bulwark:Tls:RequireClientCertificate"] = "true",
        ["Bulwark:Tls:ClientCaPath"] = certs.CaPath,
    };

    /// <summary>
    /// Speaks TLS 1.2 directly, where the server's verdict on the client certificate arrives inside
    /// the handshake: the handshake itself must fail, before any HTTP is exchanged.
    /// </summary>
    private static async Task AssertRefusedAtHandshakeAsync(TlsServer server, TestCertificates certs, X509Certificate2? clientCertificate)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, server.Address.Port);
        await using var tls = new SslStream(tcp.GetStream());
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = "127.0.0.1",
            EnabledSslProtocols = SslProtocols.Tls12,
            RemoteCertificateValidationCallback = (_, cert, _, _) => certs.ValidatesServer(cert as X509Certificate2),
            ClientCertificates = clientCertificate is null ? null : [clientCertificate],
        };
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await tls.AuthenticateAsClientAsync(options);
            // Should the stack report the handshake as done, the server must still have closed it unserved.
            await tls.WriteAsync("GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"u8.ToArray());
            var buffer = new byte[64];
            if (await tls.ReadAsync(buffer) == 0) throw new IOException("closed by the server");
        });
    }

    private sealed class TlsServer : IAsyncDisposable
    {
        private int _served;
        private WebApplication _app = null!;

        public Uri Address { get; private set; } = null!;
        public int Served => Volatile.Read(ref _served);

        public static async Task<TlsServer> StartAsync(Dictionary<string, string?> settings)
        {
            var server = new TlsServer();
            var builder = WebApplication.CreateSlimBuilder();
            builder.Configuration.AddInMemoryCollection(settings);
            var tls = builder.UseBulwarkTls();
            builder.WebHost.UseUrls($"{KestrelTls.Scheme(tls)}://127.0.0.1:0");
            server._app = builder.Build();
            server._app.MapGet("/hello", () =>
            {
                Interlocked.Increment(ref server._served);
                return "hello";
            });
            await server._app.StartAsync();
            server.Address = new Uri(server._app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
            Assert.Equal("https", server.Address.Scheme);
            return server;
        }

        public HttpClient Client(TestCertificates certs, X509Certificate2? clientCertificate)
        {
            var handler = new SocketsHttpHandler
            {
                SslOptions = new SslClientAuthenticationOptions
                {
                    RemoteCertificateValidationCallback = (_, cert, _, _) => certs.ValidatesServer(cert as X509Certificate2),
                    ClientCertificates = clientCertificate is null ? null : [clientCertificate],
                },
            };
            return new HttpClient(handler) { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(20) };
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
