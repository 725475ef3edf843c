using System.Text;
using Bulwark.Server.Observability;
using Bulwark.Server.Tests.Gateway;
using Bulwark.Server.Tests.Hosting;

namespace Bulwark.Server.Tests.Observability;

/// <summary>The latency histograms' buckets: ranges that cover LLM latencies, steps fine enough for P50/P95/P99, and the exposition honouring them.</summary>
public sealed class LatencyBucketsTests
{
    public static TheoryData<string, double, double> Sets => new()
    {
        { nameof(LatencyBuckets.TimeToFirstToken), 0.005, 60 },
        { nameof(LatencyBuckets.InterTokenLatency), 0.001, 5 },
        { nameof(LatencyBuckets.QueueTime), 0.001, 300 },
        { nameof(LatencyBuckets.RequestDuration), 0.005, 600 },
    };

    private static double[] Of(string name) => (double[])typeof(LatencyBuckets).GetField(name)!.GetValue(null)!;

    [Theory]
    [MemberData(nameof(Sets))]
    public void EachSetCoversItsRangeInStepsAtMostTwoAndAHalfTimesApart(string name, double lowest, double highest)
    {
        var bounds = Of(name);
        Assert.True(bounds[0] <= lowest, $"{name} starts at {bounds[0]}");
        Assert.True(bounds[^1] >= highest, $"{name} ends at {bounds[^1]}");
        for (var i = 1; i < bounds.Length; i++)
        {
            Assert.True(bounds[i] > bounds[i - 1], $"{name} is not increasing at {bounds[i]}");
            // histogram_quantile interpolates linearly inside a bucket: a bucket much wider than its lower bound makes P95/P99 a guess.
            Assert.True(bounds[i] / bounds[i - 1] <= 2.5, $"{name}: {bounds[i - 1]} to {bounds[i]} is too coarse a step");
        }
    }

    [Theory]
    [InlineData(59.999, "60", "45")]
    [InlineData(60, "60", "45")]
    [InlineData(0.004, "0.005", null)]
    [InlineData(0.005, "0.005", null)]
    public void AValueIsCountedInTheFirstBucketAtOrAboveIt(double seconds, string bucket, string? below)
    {
        using var metrics = new ServerMetrics(() => default, () => (0, 0));
        using var exposition = new PrometheusExposition(metrics.Meter);
        metrics.TimeToFirstToken.Record(seconds, new KeyValuePair<string, object?>("model", "m"));
        var text = exposition.Render();
        Assert.Contains($"bulwark_time_to_first_token_seconds_bucket{{model=\"m\",le=\"{bucket}\"}} 1\n", text);
        if (below is not null) Assert.Contains($"bulwark_time_to_first_token_seconds_bucket{{model=\"m\",le=\"{below}\"}} 0\n", text);
    }

    [Fact]
    public void AValueAboveTheLastBoundIsOnlyInTheInfiniteBucket()
    {
        using var metrics = new ServerMetrics(() => default, () => (0, 0));
        using var exposition = new PrometheusExposition(metrics.Meter);
        metrics.RequestDuration.Record(600.5, new KeyValuePair<string, object?>("route", "r"));
        metrics.InterTokenLatency.Record(0.0005);
        var text = exposition.Render();
        Assert.Contains("bulwark_request_duration_seconds_bucket{route=\"r\",le=\"600\"} 0\n", text);
        Assert.Contains("bulwark_request_duration_seconds_bucket{route=\"r\",le=\"+Inf\"} 1\n", text);
        // Below the first bound: in the first bucket.
        Assert.Contains("bulwark_inter_token_latency_seconds_bucket{le=\"0.001\"} 1\n", text);
        // Histograms without advice keep the default set (here: none recorded, so the queue time's own set is checked by name).
        metrics.QueueTime.Record(250);
        Assert.Contains("bulwark_request_queue_time_seconds_bucket{le=\"300\"} 1\n", exposition.Render());
    }

    [Fact]
    public async Task ForwardedGenerationsCarryTheUpstreamPoolAndEmbeddedOnesDoNot()
    {
        await using var gateway = await TestGateway.StartAsync([new ScriptedBackend()]);
        // Streamed: a forwarded stream counts its tokens as they come (a whole forwarded answer is counted by its usage only).
        var chat = """{"model":"test-model","max_tokens":3,"temperature":0,"stream":true,"messages":[{"role":"user","content":"hi"}]}""";
        Assert.Equal(200, (int)(await gateway.Http.PostAsync("v1/chat/completions", new StringContent(chat, Encoding.UTF8, "application/json"))).StatusCode);

        var forwarded = await gateway.Metrics.GetStringAsync("metrics");
        // (A forwarded stream counts one token per chunk it relays, so only the label is checked here.)
        Assert.Contains("bulwark_generation_tokens_total{model=\"test-model\",upstream=\"gpu\"} ", forwarded);
        Assert.Contains("bulwark_time_to_first_token_seconds_count{model=\"test-model\",upstream=\"gpu\"} 1\n", forwarded);
        Assert.Contains("bulwark_prompt_tokens_total{model=\"test-model\",upstream=\"gpu\"}", forwarded);
        // The upstream (a Bulwark running the model itself) labels the same generation by model alone.
        var embedded = await gateway.Upstreams[0].Metrics.GetStringAsync("metrics");
        Assert.Contains("bulwark_generation_tokens_total{model=\"test-model\"} 3\n", embedded);
        Assert.DoesNotContain("upstream=", embedded);
    }
}
