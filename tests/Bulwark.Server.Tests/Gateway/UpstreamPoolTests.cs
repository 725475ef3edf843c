using Bulwark.Server.Backends.Upstream;
using Bulwark.Server.Observability;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;

namespace Bulwark.Server.Tests.Gateway;

/// <summary>The balancer and the pool's settings, without a network.</summary>
public sealed class UpstreamPoolTests
{
    private static UpstreamPoolOptions Options(params (string Url, int Weight)[] endpoints) => new()
    {
        Models = ["m"],
        Endpoints = endpoints.Select(e => new UpstreamEndpointOptions { Url = e.Url, Weight = e.Weight }).ToList(),
        MaxInFlightPerEndpoint = 4,
    };

    [Fact]
    public async Task TheLeastLoadedEndpointPerWeightIsPickedAndAFullOneIsSkipped()
    {
        using var metrics = new ServerMetrics(() => default, () => (0, 0));
        await using var pool = new UpstreamPool("p", Options(("http://a:1/v1", 1), ("http://b:1/v1", 2)), new UpstreamMetrics(metrics), NullLogger.Instance);
        var (a, b) = (pool.Endpoints[0], pool.Endpoints[1]);

        // b has twice a's weight: it takes two requests for each of a's.
        var picks = new List<UpstreamEndpoint>();
        for (var i = 0; i < 6; i++)
        {
            var e = pool.Pick("m", new HashSet<UpstreamEndpoint>())!;
            e.Enter();
            picks.Add(e);
        }
        Assert.Equal(2, picks.Count(e => e == a));
        Assert.Equal(4, picks.Count(e => e == b));

        // b is at its bulkhead (4): only a is left; with a full too, nothing is.
        Assert.Same(a, pool.Pick("m", new HashSet<UpstreamEndpoint>()));
        a.Enter();
        a.Enter();
        Assert.Null(pool.Pick("m", new HashSet<UpstreamEndpoint>()));
    }

    [Fact]
    public async Task AnEndpointAlreadyTriedIsPickedAgainOnlyWhenNoOtherIsLeftAndADownOneNever()
    {
        using var metrics = new ServerMetrics(() => default, () => (0, 0));
        await using var pool = new UpstreamPool("p", Options(("http://a:1/v1", 1), ("http://b:1/v1", 1)), new UpstreamMetrics(metrics), NullLogger.Instance);
        var (a, b) = (pool.Endpoints[0], pool.Endpoints[1]);

        Assert.Same(b, pool.Pick("m", new HashSet<UpstreamEndpoint> { a }));
        Assert.Contains(pool.Pick("m", new HashSet<UpstreamEndpoint> { a, b }), new[] { a, b });
        pool.Eject(b);
        Assert.Same(a, pool.Pick("m", new HashSet<UpstreamEndpoint> { a }));
        pool.Eject(a);
        Assert.Null(pool.Pick("m", new HashSet<UpstreamEndpoint>()));
    }

    [Fact]
    public async Task RenamesMapServedNamesToTheUpstreamsAndBack()
    {
        using var metrics = new ServerMetrics(() => default, () => (0, 0));
        var options = Options(("http://a:1/v1", 1));
        options.Rename["chat"] = "meta-llama/Llama-3.1-8B-Instruct";
        await using var pool = new UpstreamPool("p", options, new UpstreamMetrics(metrics), NullLogger.Instance);
        Assert.Equal("meta-llama/Llama-3.1-8B-Instruct", pool.UpstreamName("chat"));
        Assert.Equal("chat", pool.Served("meta-llama/Llama-3.1-8B-Instruct"));
        Assert.Equal("other", pool.UpstreamName("other"));
    }

    [Theory]
    [InlineData("Protocol", "grpc", "Protocol must be openai")]
    [InlineData("Endpoints:0:Url", "ftp://x/v1", "must be an http or https URL")]
    [InlineData("Endpoints:0:Url", "http://user:secret@x/v1", "must not carry credentials")]
    [InlineData("Endpoints:0:Weight", "0", "Weight must be between 1 and 1000; got 0")]
    [InlineData("MaxAttempts", "11", "MaxAttempts must be between 1 and 10; got 11")]
    [InlineData("MaxInFlightPerEndpoint", "0", "MaxInFlightPerEndpoint must be between 1 and 100000; got 0")]
    [InlineData("BreakerFailureRatio", "1.5", "BreakerFailureRatio must be more than 0 and at most 1")]
    [InlineData("ApiKeyEnv", "BULWARK_TEST_SURELY_UNSET_VARIABLE", "names the environment variable BULWARK_TEST_SURELY_UNSET_VARIABLE, which is not set")]
    [InlineData("FirstByteTimeout", "00:00:00", "FirstByteTimeout must be more than 0")]
    public void BadSettingsStopStartUpNamingTheKeyAndValue(string key, string value, string message)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Bulwark:Upstreams:gpu:Endpoints:0:Url"] = "http://127.0.0.1:1/v1",
            ["Bulwark:Upstreams:gpu:" + key] = value,
        }).Build();
        var error = Assert.Throws<ServerConfigurationException>(() => { Bulwark.Server.Hosting.ServerSettings.Read(configuration); });
        Assert.Contains("Bulwark:Upstreams:gpu:", error.Message);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public async Task ARoutesUriIsMadeOnceAndIsTheBaseJoinedWithTheRouteEvenPastTheBound()
    {
        using var metrics = new ServerMetrics(() => default, () => (0, 0));
        await using var pool = new UpstreamPool("p", Options(("http://a:1/v1/", 1), ("https://b:8443/tgi", 1)), new UpstreamMetrics(metrics), NullLogger.Instance);
        foreach (var e in pool.Endpoints)
        {
            var routes = new[] { "chat/completions", "completions", "models", "generate", "generate_stream" }
                .Concat(Enumerable.Range(0, UpstreamEndpoint.MaxRoutes).Select(i => $"r{i}")).ToList();
            foreach (var route in routes)
            {
                var uri = e.UriOf(route);
                Assert.Equal(new Uri(e.BaseUrl, route), uri);
                Assert.Equal(uri, e.UriOf(route));
            }
            // The first routes (below the bound) are kept: the same instance each time.
            Assert.Same(e.UriOf("chat/completions"), e.UriOf("chat/completions"));
            // Those past the bound are made each time, and still right.
            var past = routes[^1];
            Assert.NotSame(e.UriOf(past), e.UriOf(past));
        }
        Assert.Equal("http://a:1/v1/chat/completions", pool.Endpoints[0].UriOf("chat/completions").ToString());
        Assert.Equal("https://b:8443/tgi/generate", pool.Endpoints[1].UriOf("generate").ToString());
    }

    [Fact]
    public async Task TheModelCardFollowsTheContextLengthEachHealthCheckReports()
    {
        using var metrics = new ServerMetrics(() => default, () => (0, 0));
        var options = Options(("http://a:1/v1", 1), ("http://b:1/v1", 1));
        options.Models = [];
        await using var pool = new UpstreamPool("p", options, new UpstreamMetrics(metrics), NullLogger.Instance);
        var backend = new UpstreamBackend(pool, "m", new UpstreamMetrics(metrics), _ => null, TimeProvider.System);
        var (a, b) = (pool.Endpoints[0], pool.Endpoints[1]);
        Assert.Equal(0, backend.Model.ContextLength);
        a.SetHealth(true, new Dictionary<string, int> { ["m"] = 4096 });
        Assert.Equal(4096, backend.Model.ContextLength);
        // Read twice without a check between: the same card.
        Assert.Same(backend.Model, backend.Model);
        b.SetHealth(true, new Dictionary<string, int> { ["m"] = 2048 });
        Assert.Equal(2048, backend.Model.ContextLength);
        a.SetHealth(true, new Dictionary<string, int> { ["m"] = 1024 });
        b.SetHealth(true, new Dictionary<string, int> { ["m"] = 8192 });
        Assert.Equal(1024, backend.Model.ContextLength);
        // A verdict without a model list (a failed check) leaves the card as it was.
        var card = backend.Model;
        a.SetHealth(false);
        Assert.Same(card, backend.Model);
        Assert.Equal("upstream:p", card.OwnedBy);
        Assert.Equal("p", card.Pool);
    }
}
