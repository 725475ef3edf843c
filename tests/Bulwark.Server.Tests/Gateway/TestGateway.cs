using System.Net.Http.Headers;
using Bulwark.Server.Hosting;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Hosting;
using Bulwark.Server.Tests.Security;
using Bulwark.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Tests.Gateway;

/// <summary>
/// Upstream engines and a Bulwark gateway in front of them, all real HTTP servers on loopback: the
/// upstreams are <see cref="RunningServer"/>s (one data directory, so one key works on all of them),
/// the gateway is <c>bulwark serve</c>'s own composition (<see cref="ServeHost"/>) configured with one
/// pool, <c>gpu</c>, whose key comes from an environment variable as an operator would set it.
/// </summary>
internal sealed class TestGateway : IAsyncDisposable
{
    private readonly List<RunningServer> _upstreams;
    private readonly List<FaultProxy> _proxies;

    private TestGateway(ServeHost host, List<RunningServer> upstreams, List<FaultProxy> proxies, string apiKey, string upstreamKey, LogCapture logs, string output)
    {
        Host = host;
        _upstreams = upstreams;
        _proxies = proxies;
        UpstreamKey = upstreamKey;
        Logs = logs;
        Output = output;
        Http = Client(apiKey);
        Metrics = Client(MetricsToken);
        ApiKey = apiKey;
    }

    public ServeHost Host { get; }
    public IReadOnlyList<RunningServer> Upstreams => _upstreams;

    /// <summary>One fault proxy in front of each upstream, in the same order; the pool's endpoints are the proxies.</summary>
    public IReadOnlyList<FaultProxy> Proxies => _proxies;

    public HttpClient Http { get; }
    public HttpClient Metrics { get; }
    public string ApiKey { get; }

    /// <summary>The key the gateway sends upstream: it must never show in anything the gateway writes.</summary>
    public string UpstreamKey { get; }

    public LogCapture Logs { get; }
    public string Output { get; }

    private const string MetricsToken = "gateway-metrics-token-0123456789abcdef0123456789";

    /// <param name="pool">More <c>Bulwark:Upstreams:gpu:*</c> settings (keys relative to the pool).</param>
    /// <param name="upstream">More settings of every upstream server (TLS, say).</param>
    /// <param name="basePath">The endpoints' path: <c>v1</c> for the OpenAI protocol, empty for TGI's.</param>
    public static async Task<TestGateway> StartAsync(IReadOnlyList<Bulwark.Server.Backends.IGenerationBackend> backends, Dictionary<string, string?>? pool = null,
        Dictionary<string, string?>? gateway = null, Dictionary<string, string?>? upstream = null, string basePath = "v1")
    {
        var shared = Fixtures.NewTempDirectory("upstreams");
        var upstreams = new List<RunningServer>();
        var proxies = new List<FaultProxy>();
        foreach (var backend in backends)
        {
            var settings = new Dictionary<string, string?>(upstream ?? []) { [ServerSettings.DataDirKey] = shared };
            var server = await RunningServer.StartAsync(backend, settings);
            upstreams.Add(server);
            proxies.Add(new FaultProxy(server.Address));
        }
        var upstreamKey = upstreams[0].ApiKey!;
        var variable = "BULWARK_TEST_UPSTREAM_KEY_" + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(variable, upstreamKey);

        var gatewaySettings = new Dictionary<string, string?>
        {
            ["Bulwark:Server:Port"] = "0",
            [ServerSettings.DataDirKey] = Fixtures.NewTempDirectory("gateway"),
            ["Bulwark:Security:MetricsToken"] = MetricsToken,
            ["Bulwark:Upstreams:gpu:ApiKeyEnv"] = variable,
            ["Bulwark:Upstreams:gpu:HealthInterval"] = "00:00:00.300",
            ["Bulwark:Upstreams:gpu:BreakDuration"] = "00:00:01",
            ["Bulwark:Upstreams:gpu:BreakerMinimumThroughput"] = "2",
            ["Bulwark:Upstreams:gpu:RetryDelay"] = "00:00:00.010",
            ["Bulwark:Upstreams:gpu:FirstByteTimeout"] = "00:00:05",
            ["Bulwark:Upstreams:gpu:ConnectTimeout"] = "00:00:02",
        };
        // The proxies relay bytes, so TLS to an upstream passes through them unchanged.
        for (var i = 0; i < proxies.Count; i++)
            gatewaySettings[$"Bulwark:Upstreams:gpu:Endpoints:{i}:Url"] = new UriBuilder(proxies[i].Address(basePath)) { Scheme = upstreams[i].Address.Scheme }.Uri.ToString();
        foreach (var (k, v) in pool ?? []) gatewaySettings["Bulwark:Upstreams:gpu:" + k] = v;
        foreach (var (k, v) in gateway ?? []) gatewaySettings[k] = v;
        var builder = BulwarkServer.CreateBuilder([], gatewaySettings);
        var logs = new LogCapture();
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        builder.Logging.AddProvider(logs);
        var output = new StringWriter();
        var host = await ServeHost.StartAsync(builder, output);
        var key = (await host.App.Services.GetRequiredService<KeyIssuer>().CreateAsync(new KeySpec { Name = "app" }, "tests")).Key;
        return new TestGateway(host, upstreams, proxies, key, upstreamKey, logs, output.ToString());
    }

    /// <summary>The official OpenAI SDK pointed at the gateway, with the gateway's key.</summary>
    public OpenAI.OpenAIClient OpenAI() =>
        new(new System.ClientModel.ApiKeyCredential(ApiKey), new OpenAI.OpenAIClientOptions { Endpoint = new Uri(Host.Address, "v1"), NetworkTimeout = TimeSpan.FromSeconds(60) });

    public HttpClient Client(string? key)
    {
        var client = new HttpClient { BaseAddress = Host.Address, Timeout = TimeSpan.FromSeconds(60) };
        if (key is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        Metrics.Dispose();
        await Host.DisposeAsync();
        foreach (var proxy in _proxies) await proxy.DisposeAsync();
        foreach (var upstream in _upstreams) await upstream.DisposeAsync();
    }
}
