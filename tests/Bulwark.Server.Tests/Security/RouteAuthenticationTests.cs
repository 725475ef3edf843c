using System.Net;
using Bulwark.Server.Security;

namespace Bulwark.Server.Tests.Security;

public class RouteAuthenticationTests
{
    private static readonly string[] PublicPaths = ["/health", "/ready"];

    [Fact]
    public async Task EveryMappedRouteRefusesMissingCredentialsAndKeysWithoutItsScope()
    {
        await using var app = await SecuredApp.StartAsync(SecuredApp.NewDataDir());
        var api = await app.CreateKeyAsync(new KeySpec { Name = "api" });
        var admin = await app.CreateKeyAsync(new KeySpec { Name = "admin", IsAdmin = true });

        var probes = RouteAuthenticationAudit.Enumerate(app.Services);
        Assert.True(probes.Count >= 15, $"expected the stand-in and admin routes, found {probes.Count}");
        var results = await RouteAuthenticationAudit.RunAsync(app.Address, probes, api.Key, admin.Key);

        foreach (var (probe, anonymous, wrongScope) in results)
        {
            if (PublicPaths.Contains(probe.Path))
            {
                Assert.Equal(HttpStatusCode.OK, anonymous);
                continue;
            }
            Assert.True(anonymous == HttpStatusCode.Unauthorized, $"{probe.Method} {probe.Path} answered {anonymous} without credentials");
            Assert.True(wrongScope == HttpStatusCode.Forbidden, $"{probe.Method} {probe.Path} answered {wrongScope} to a key without '{probe.Scope}'");
        }
        Assert.Contains(results, r => r.Probe.Path == "/metrics");
        Assert.Contains(results, r => r.Probe.Path.StartsWith("/admin/", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("/no/such/route")]
    [InlineData("/HEALTH/../v1/models")]
    [InlineData("/health/")]
    [InlineData("/healthz")]
    public async Task PathsOffThePublicListNeedCredentials(string path)
    {
        await using var app = await SecuredApp.StartAsync(SecuredApp.NewDataDir());
        using var response = await app.Client().GetAsync(path);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
    }

    [Theory]
    [InlineData("/health")]
    [InlineData("/Ready")]
    public async Task PublicPathsAnswerWithoutCredentials(string path)
    {
        await using var app = await SecuredApp.StartAsync(SecuredApp.NewDataDir());
        using var response = await app.Client().GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task MetricsNeedTheMetricsTokenOrAnAdminKey()
    {
        var token = new string('m', 40);
        await using var app = await SecuredApp.StartAsync(SecuredApp.NewDataDir(), new Dictionary<string, string?> { ["Bulwark:Security:MetricsToken"] = token });
        var api = await app.CreateKeyAsync(new KeySpec { Name = "api" });
        var admin = await app.CreateKeyAsync(new KeySpec { Name = "admin", IsAdmin = true });

        Assert.Equal(HttpStatusCode.OK, (await app.Client(token).GetAsync("/metrics")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await app.Client(admin.Key).GetAsync("/metrics")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await app.Client(api.Key).GetAsync("/metrics")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await app.Client(token[..^1]).GetAsync("/metrics")).StatusCode);
        // The metrics token reads metrics only.
        Assert.Equal(HttpStatusCode.Forbidden, (await app.Client(token).GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await app.Client(token).GetAsync("/admin/keys")).StatusCode);
    }
}
