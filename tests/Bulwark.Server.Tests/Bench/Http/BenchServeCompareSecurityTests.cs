using System.Text.Json;

namespace Bulwark.Server.Tests.Bench.Http;

/// <summary>
/// <c>bench/run serve --compare-security</c>: the shape of what it prints and that the secured server
/// really authenticated, admitted and audited every request. Timing goals live in the benchmark
/// run itself, never here.
/// </summary>
public class BenchServeCompareSecurityTests
{
    [Fact]
    public async Task ATinyRunReportsBothServersAndTheDifferenceAsJson()
    {
        var result = await BenchHarness.RunAsync("serve", "--compare-security", "--requests", "12", "--warmup", "3", "--json");
        Assert.True(result.ExitCode == 0, result.Error);
        using var json = JsonDocument.Parse(result.Output);
        var root = json.RootElement;
        Assert.Equal(12, root.GetProperty("requests").GetInt32());
        Assert.Equal(3, root.GetProperty("warmup").GetInt32());
        Assert.Equal(1, root.GetProperty("max_tokens").GetInt32());
        Assert.False(root.GetProperty("instant_engine").GetBoolean());
        // Every request to the secured server, warm-up included, left one audit record under the bench key.
        Assert.Equal(15, root.GetProperty("audited").GetInt64());
        foreach (var side in new[] { "on", "off" })
        {
            var p50 = root.GetProperty($"{side}_p50_us").GetDouble();
            Assert.True(p50 > 0, $"{side} p50 {p50}");
            Assert.True(root.GetProperty($"{side}_p99_us").GetDouble() >= p50);
        }
        Assert.Equal(root.GetProperty("on_p50_us").GetDouble() - root.GetProperty("off_p50_us").GetDouble(), root.GetProperty("overhead_p50_us").GetDouble(), 6);
        Assert.Equal(root.GetProperty("on_p99_us").GetDouble() - root.GetProperty("off_p99_us").GetDouble(), root.GetProperty("overhead_p99_us").GetDouble(), 6);
        Assert.Equal(JsonValueKind.Number, root.GetProperty("paired_difference_p50_us").ValueKind);
    }

    [Fact]
    public async Task TheTableNamesBothSidesAndTheOverhead()
    {
        var result = await BenchHarness.RunAsync("serve", "--compare-security", "--requests", "1", "--warmup", "0", "--max-tokens", "2");
        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Contains("1 requests each (after 0 warm-up), max_tokens 2", result.Output);
        Assert.Contains("security on : p50 ", result.Output);
        Assert.Contains("security off: p50 ", result.Output);
        Assert.Contains("overhead    : p50 ", result.Output);
        Assert.Contains("on − off within each pair: p50 ", result.Output);
        Assert.Contains("audit records written for the key: 1", result.Output);
    }

    [Theory]
    [InlineData("--requests 0", "--requests must be between 1 and 1000000; got 0")]
    [InlineData("--requests 1000001", "--requests must be between 1 and 1000000; got 1000001")]
    [InlineData("--warmup -1", "--warmup must be between 0 and 1000000; got -1")]
    [InlineData("--max-tokens 0", "--max-tokens must be between 1 and 65536; got 0")]
    [InlineData("--url http://127.0.0.1:8000", "--compare-security starts its own servers; drop --url")]
    [InlineData("--concurrency 4", "--concurrency does not apply to --compare-security")]
    [InlineData("--stream", "--stream does not apply to --compare-security")]
    public async Task SettingsOutsideTheirRangeOrNotApplyingAreRefused(string flags, string message)
    {
        var result = await BenchHarness.RunAsync(["serve", "--compare-security", .. flags.Split(' ')]);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(message, result.Error);
    }

    [Fact]
    public async Task TheInstantEngineRunsTheSameComparisonWithoutGenerating()
    {
        var result = await BenchHarness.RunAsync("serve", "--compare-security", "--instant-engine", "--requests", "10", "--warmup", "0", "--max-tokens", "3", "--json");
        Assert.True(result.ExitCode == 0, result.Error);
        using var json = JsonDocument.Parse(result.Output);
        Assert.True(json.RootElement.GetProperty("instant_engine").GetBoolean());
        Assert.Equal(10, json.RootElement.GetProperty("audited").GetInt64());

        var text = await BenchHarness.RunAsync("serve", "--compare-security", "--instant-engine", "--requests", "1", "--warmup", "0");
        Assert.Contains("(instant stand-in: tokenizer only, no generation)", text.Output);
    }

    [Fact]
    public async Task TheInstantEngineNeedsCompareSecurity()
    {
        var result = await BenchHarness.RunAsync("serve", "--url", "http://127.0.0.1:9", "--instant-engine");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--instant-engine applies only to --compare-security", result.Error);
    }

    [Fact]
    public async Task WithoutCompareSecurityTheUrlIsRequired()
    {
        var result = await BenchHarness.RunAsync("serve", "--requests", "1");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("--url is required (or --compare-security)", result.Error + result.Output);
    }
}
