using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Hosting;
using Bulwark.Server.Tests.Security;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Gateway;

/// <summary>The hop to an upstream over TLS with a private CA, and mutual TLS with a client certificate.</summary>
public sealed class GatewayTlsTests
{
    private static readonly string Chat = JsonSerializer.Serialize(new
    {
        model = "test-model", max_tokens = 4, temperature = 0, messages = new[] { new { role = "user", content = "Hello" } },
    });

    /// <summary>An upstream on https with a certificate from a test CA, asking every client for a certificate from the same CA.</summary>
    private static (TestCertificates Certs, Dictionary<string, string?> Upstream, string ClientCert, string ClientKey) MutualTls()
    {
        var folder = Fixtures.NewTempDirectory("upstream-tls");
        var certs = TestCertificates.Create(folder);
        var client = certs.Client("bulwark-gateway");
        var (clientCert, clientKey) = (Path.Combine(folder, "gateway.pem"), Path.Combine(folder, "gateway.key"));
        File.WriteAllText(clientCert, client.ExportCertificatePem());
        File.WriteAllText(clientKey, client.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        var upstream = new Dictionary<string, string?>
        {
            ["Bulwark:Tls:CertificatePath"] = certs.ServerCertPath,
            ["Bulwark:Tls:KeyPath"] = certs.ServerKeyPath,
            ["Bulwark:Tls:RequireClientCertificate"] = "true",
            ["Bulwark:Tls:ClientCaPath"] = certs.CaPath,
        };
        return (certs, upstream, clientCert, clientKey);
    }

    [Fact]
    public async Task TheGatewayTrustsTheConfiguredCaAndPresentsItsClientCertificate()
    {
        var (certs, upstream, clientCert, clientKey) = MutualTls();
        await using var gateway = await TestGateway.StartAsync([new ScriptedBackend()], upstream: upstream, pool: new()
        {
            ["CaFile"] = certs.CaPath, ["ClientCertificateFile"] = clientCert, ["ClientKeyFile"] = clientKey,
        });

        Assert.StartsWith("https://", gateway.Upstreams[0].Address.ToString());
        var (status, body, _) = await RawHttp.PostJsonAsync(gateway.Http, "v1/chat/completions", Chat);
        Assert.Equal(200, status);
        Assert.Equal("Hell", body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Theory]
    [InlineData(false, true)]  // the system's trust does not know the test CA
    [InlineData(true, false)]  // the upstream requires a client certificate
    public async Task WithoutTheCaOrTheClientCertificateNothingIsServed(bool trustCa, bool presentCertificate)
    {
        var (certs, upstream, clientCert, clientKey) = MutualTls();
        var pool = new Dictionary<string, string?> { ["Models:0"] = "test-model", ["HealthInterval"] = "00:10:00" };
        if (trustCa) pool["CaFile"] = certs.CaPath;
        if (presentCertificate) (pool["ClientCertificateFile"], pool["ClientKeyFile"]) = (clientCert, clientKey);
        await using var gateway = await TestGateway.StartAsync([new ScriptedBackend()], upstream: upstream, pool: pool);

        Assert.Contains("upstream   pool gpu: 0 of 1 endpoint(s) up", gateway.Output);
        var (status, body, _) = await RawHttp.PostJsonAsync(gateway.Http, "v1/chat/completions", Chat);
        Assert.Equal(503, status);
        Assert.Equal("upstream_unavailable", RawHttp.Error(body).GetProperty("code").GetString());
    }
}
