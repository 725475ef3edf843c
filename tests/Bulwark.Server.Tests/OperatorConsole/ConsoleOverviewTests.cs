using System.Globalization;
using System.Net;
using System.Text.Json;
using Bulwark.Server.OperatorConsole;
using CsCheck;

namespace Bulwark.Server.Tests.OperatorConsole;

/// <summary>The overview's figures: what /metrics exposes, behind the session, not audited as requests.</summary>
public sealed class ConsoleOverviewTests
{
    [Fact]
    public async Task TheOverviewShowsTheFiguresMetricsExposes()
    {
        await using var host = await ConsoleHost.StartAsync();
        var session = await host.SignInAsync();
        for (var i = 0; i < 3; i++) Assert.Equal(HttpStatusCode.OK, await ConsoleKeysTests.CompleteAsync(host, host.Api.Key, "alpha"));
        Assert.Equal(HttpStatusCode.NotFound, await ConsoleKeysTests.CompleteAsync(host, host.Api.Key, "nosuchmodel"));

        using var figures = JsonDocument.Parse(await session.GetStringAsync("console/api/overview"));
        using var client = host.Raw();
        using var request = new HttpRequestMessage(HttpMethod.Get, "metrics");
        request.Headers.Authorization = new("Bearer", host.Admin.Key);
        using var response = await client.SendAsync(request);
        var metrics = await response.Content.ReadAsStringAsync();
        double Sum(string name) => metrics.Split('\n').Where(l => l.StartsWith(name + " ", StringComparison.Ordinal) || l.StartsWith(name + "{", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));

        var root = figures.RootElement;
        Assert.True(root.GetProperty("generationTokens").GetDouble() > 0);
        Assert.Equal(Sum("bulwark_generation_tokens_total"), root.GetProperty("generationTokens").GetDouble());
        Assert.Equal(Sum("bulwark_prompt_tokens_total"), root.GetProperty("promptTokens").GetDouble());
        Assert.Equal(Sum("bulwark_time_to_first_token_seconds_count"), root.GetProperty("timeToFirstToken").GetProperty("count").GetInt64());
        Assert.Equal(3, root.GetProperty("timeToFirstToken").GetProperty("count").GetInt64());
        Assert.True(root.GetProperty("timeToFirstToken").GetProperty("p50").GetDouble() > 0);
        Assert.Equal(Sum("bulwark_kv_cache_usage_ratio"), root.GetProperty("kvCacheUsage").GetDouble());
        Assert.Equal("normal", root.GetProperty("degradation").GetString());
        Assert.False(root.GetProperty("isolated").GetBoolean());
        Assert.True(root.GetProperty("requests").GetDouble() >= 4);
    }

    [Fact]
    public async Task PollingTheFiguresIsNotAuditedButOpeningPagesIs()
    {
        await using var host = await ConsoleHost.StartAsync();
        var session = await host.SignInAsync();
        for (var i = 0; i < 3; i++) await session.GetStringAsync("console/api/overview");
        await session.GetStringAsync("console/keys");
        // A record is queued as its request ends, which a client can see a moment before.
        Assert.True(await Bulwark.Server.Tests.Security.Eventually.WithinAsync(TimeSpan.FromSeconds(5), async () =>
            (await host.AuditAsync()).Any(r => r.Route == "GET /console/keys" && r.KeyId == host.Admin.Record.Id)), "opening the keys page was not audited");
        Assert.DoesNotContain(await host.AuditAsync(), r => r.Route == "GET /console/api/overview");
    }

    [Fact]
    public void QuantilesInterpolateInsideTheirBucketAsPrometheusDoes()
    {
        double[] bounds = [1, 2, 4];
        Assert.Null(OverviewFigures.Quantile(0.5, bounds, [0, 0, 0, 0]));
        Assert.Equal(1.5, OverviewFigures.Quantile(0.5, bounds, [0, 10, 0, 0]));
        Assert.Equal(0.5, OverviewFigures.Quantile(0.5, bounds, [10, 0, 0, 0]));
        // A rank in the +Inf bucket answers the highest finite bound.
        Assert.Equal(4, OverviewFigures.Quantile(0.99, bounds, [1, 0, 0, 99]));
    }

    [Fact]
    public void EachEstimatedQuantileLiesInTheBucketOfTheExactOne()
    {
        double[] bounds = [0.01, 0.05, 0.1, 0.5, 1, 5];
        Gen.Double[0, 6].Array[1, 200].Sample(values =>
        {
            var buckets = new long[bounds.Length + 1];
            foreach (var v in values)
            {
                var b = Array.BinarySearch(bounds, v);
                buckets[b >= 0 ? b : ~b]++;
            }
            var sorted = values.Order().ToArray();
            foreach (var q in new[] { 0.5, 0.95, 0.99 })
            {
                // The exact quantile: the smallest value with at least q of the values at or below it.
                var exact = sorted[Math.Max(0, (int)Math.Ceiling(q * sorted.Length) - 1)];
                var estimate = OverviewFigures.Quantile(q, bounds, buckets)!.Value;
                var bucket = Array.BinarySearch(bounds, exact) is var i && i >= 0 ? i : ~i;
                var lower = bucket == 0 ? 0 : bounds[bucket - 1];
                var upper = bucket < bounds.Length ? bounds[bucket] : bounds[^1];
                if (bucket == bounds.Length) lower = bounds[^1];
                Assert.InRange(estimate, lower, upper);
            }
        });
    }
}
