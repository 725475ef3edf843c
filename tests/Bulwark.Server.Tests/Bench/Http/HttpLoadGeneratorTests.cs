using Bulwark.Bench.Http;
using Bulwark.Server.Tests.Hosting;

namespace Bulwark.Server.Tests.Bench.Http;

/// <summary><c>bench/run serve</c>'s load generator against a real server whose replies are known.</summary>
public sealed class HttpLoadGeneratorTests
{
    [Fact]
    public async Task StreamingRunCountsEveryRequestTokenAndGap()
    {
        var backend = new ScriptedBackend();
        await using var server = await RunningServer.StartAsync(backend, new() { [Bulwark.Server.Hosting.ServerSettings.RedactSecretsKey] = "false" });
        var progress = new List<long>();
        var report = await new HttpLoadGenerator(new LoadSettings
        {
            Url = server.Address, Concurrency = 3, Requests = 10, Stream = true, ApiKey = server.ApiKey, MaxTokens = 5,
        }).RunAsync(new SynchronousProgress(progress), CancellationToken.None);

        Assert.Equal("test-model", report.Model);
        Assert.Equal(10, report.Succeeded);
        Assert.Empty(report.Errors);
        Assert.Equal(50, report.CompletionTokens);
        Assert.Equal(10, report.TimeToFirstToken.Count);
        Assert.Equal(40, report.InterTokenLatency.Count); // 5 tokens → 4 gaps per request
        Assert.Equal(10, report.Latency.Count);
        Assert.True(report.TimeToFirstToken.P50 <= report.Latency.P99);
        Assert.Equal(Enumerable.Range(1, 10).Select(i => (long)i), progress.Order());
        Assert.Equal(10, backend.StartedSequences);
        Assert.Contains("\"tokens_per_second\"", report.ToJson());
        Assert.Contains("TTFT", report.ToTable());
    }

    [Fact]
    public async Task RefusedRequestsAreErrorsByStatus()
    {
        await using var server = await RunningServer.StartAsync(new ScriptedBackend());
        var report = await new HttpLoadGenerator(new LoadSettings
        {
            Url = server.Address, Concurrency = 2, Requests = 4, ApiKey = "bwk_wrong_key", Model = "test-model",
        }).RunAsync(null, CancellationToken.None);

        Assert.Equal(0, report.Succeeded);
        Assert.Equal(4, report.Errors["401"]);
        Assert.Contains("API key", report.FirstError);
        Assert.Equal(0, report.Latency.Count);
    }

    [Theory]
    [InlineData(new double[] { 5 }, 5, 5, 5)]
    [InlineData(new double[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, 5, 9, 10)]
    public void PercentilesUseTheNearestRank(double[] values, double p50, double p90, double p99)
    {
        var p = Percentiles.Of(values.Reverse());
        Assert.Equal((values.Length, p50, p90, p99), (p.Count, p.P50, p.P90, p.P99));
        Assert.Equal(0, Percentiles.Of([]).Count);
    }

    private sealed class SynchronousProgress(List<long> seen) : IProgress<long>
    {
        public void Report(long value)
        {
            lock (seen) seen.Add(value);
        }
    }
}
