using System.Text.Json;
using Bulwark.Bench.Serving;
using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tests.Serving;

namespace Bulwark.Engine.Tests.Bench.Serving;

/// <summary><c>bench/run engine</c>: the serving engine measured in-process.</summary>
public class BenchEngineCommandTests
{
    [Fact]
    public async Task EachConcurrencyReportsTheIssuesFieldsFromARealRun()
    {
        var path = SyntheticGguf.Write(new SyntheticModelSpec { Seed = 21 });
        var progress = new StringWriter();
        var results = await BenchEngineCommand.RunAsync(new BenchEngineSettings(path, [1, 3], PromptTokens: 9, GenTokens: 4, SharedPrefix: 4, BlockSize: 4), progress);

        Assert.Equal(new[] { 1, 3 }, results.Select(r => r.Concurrency));
        Assert.Equal(new long[] { 4, 12 }, results.Select(r => r.GeneratedTokens));
        // 9 prompt + 4 generated tokens, the last one never written: ceil(12 / 4) = 3 blocks per sequence at most.
        Assert.InRange(results[0].PeakKvBlocks, 3, 4);
        Assert.InRange(results[1].PeakKvBlocks, 3, 3 * 3 + 1);
        Assert.All(results, r =>
        {
            Assert.True(r.PrefillTokensPerSecond > 0 && r.DecodeTokensPerSecond > 0);
            Assert.True(r.TtftMsP50 <= r.TtftMsP99 && r.ItlMsP50 <= r.ItlMsP99);
            Assert.Equal(0, r.Preemptions);
        });
        Assert.Contains("concurrency 3 (burst): 12/12 tokens", progress.ToString());
        // The step trace: 9-token prompts fit one step, and with nothing preempted every decode gets a token each
        // step, waiting for at most (decoders + the prefill cap) tokens computed.
        Assert.All(results, r =>
        {
            var t = r.Trace!;
            Assert.True(t.Steps >= 4);
            Assert.Equal(1, t.TtftStepsMax);
            Assert.Equal(1, t.ItlStepsMax);
            Assert.InRange(t.ItlTokensMax, r.Concurrency, r.Concurrency + 64);
            Assert.InRange(t.StepTokensMax, 1, r.Concurrency * 9);
        });

        using var json = JsonDocument.Parse(BenchEngineCommand.ToJson(results));
        var first = json.RootElement[0];
        foreach (var field in new[] { "concurrency", "prefill_tokens_per_s", "decode_tokens_per_s", "ttft_ms_p50", "ttft_ms_p99", "itl_ms_p50", "itl_ms_p99", "peak_kv_blocks" })
            Assert.True(first.TryGetProperty(field, out _), $"missing {field}");
        Assert.Equal(3, json.RootElement[1].GetProperty("concurrency").GetInt32());
        Assert.Contains("decode speed-up at 3 vs 1", BenchEngineCommand.ToTable(results));
    }

    [Fact]
    public async Task AStaggeredRunDeliversEveryTokenAndNamesItsArrival()
    {
        var path = SyntheticGguf.Write(new SyntheticModelSpec { Seed = 23 });
        var results = await BenchEngineCommand.RunAsync(new BenchEngineSettings(path, [3], PromptTokens: 9, GenTokens: 4, SharedPrefix: 0, BlockSize: 4,
            Arrivals: [ArrivalPattern.Parse("staggered:5"), ArrivalPattern.Burst], MaxPrefillWhileDecoding: 2), new StringWriter());
        Assert.Equal(new[] { "staggered:5", "burst" }, results.Select(r => r.Arrival));
        Assert.All(results, r => Assert.Equal(12, r.GeneratedTokens));
        // With a cap of 2, a 9-token prompt arriving while others decode takes several steps.
        Assert.Contains("staggered:5", BenchEngineCommand.ToTable(results));
        using var json = JsonDocument.Parse(BenchEngineCommand.ToJson(results));
        Assert.Equal("burst", json.RootElement[1].GetProperty("arrival").GetString());
        Assert.True(json.RootElement[0].TryGetProperty("itl_computed_tokens_p99", out _));
    }

    [Theory]
    [InlineData("burst", "burst")]
    [InlineData(" Poisson:2 ", "poisson:2")]
    [InlineData("poisson:0.5", "poisson:0.5")]
    [InlineData("poisson:10000", "poisson:10000")] // at the largest rate
    [InlineData("staggered:0", "staggered:0")]
    [InlineData("staggered:600000", "staggered:600000")] // at the largest gap
    public void ArrivalPatternsParse(string text, string expected) => Assert.Equal(expected, ArrivalPattern.Parse(text).ToString());

    [Theory]
    [InlineData("poisson:0")]
    [InlineData("poisson:-1")]
    [InlineData("poisson:10000.5")] // above the largest rate
    [InlineData("staggered:-1")]
    [InlineData("staggered:600001")] // above the largest gap
    [InlineData("poisson:")]
    [InlineData("poisson:fast")]
    [InlineData("uniform:3")]
    [InlineData("")]
    public void BadArrivalPatternsAreRefused(string text) =>
        Assert.StartsWith("--arrival", Assert.Throws<ArgumentException>(() => BenchEngineCommand.ParseArrivals(text)).Message);

    [Fact]
    public void ArrivalOffsetsFollowTheirPatternAndTheSeed()
    {
        Assert.All(ArrivalPattern.Burst.OffsetsMs(5, 1), o => Assert.Equal(0, o));
        Assert.Equal(new double[] { 0, 250, 500, 750 }, ArrivalPattern.Parse("staggered:250").OffsetsMs(4, 1));
        var poisson = ArrivalPattern.Parse("poisson:4");
        var offsets = poisson.OffsetsMs(20_001, 7);
        Assert.Equal(offsets, poisson.OffsetsMs(20_001, 7));
        Assert.NotEqual(offsets, poisson.OffsetsMs(20_001, 8));
        Assert.Equal(0, offsets[0]);
        var gaps = offsets.Zip(offsets.Skip(1), (a, b) => b - a).ToArray();
        Assert.All(gaps, g => Assert.True(g >= 0));
        // Exponential gaps of mean 250 ms: the mean within 3 % and the standard deviation equal to the mean.
        Assert.InRange(gaps.Average(), 242.5, 257.5);
        var sd = Math.Sqrt(gaps.Select(g => (g - gaps.Average()) * (g - gaps.Average())).Average());
        Assert.InRange(sd, 235, 265);
    }

    [Fact]
    public void TheStepTraceCountsStepsAndTokensBetweenEachRequestsTokens()
    {
        // Request A arrived after 10 steps: first token at step 12, then 13 and 15. B arrived after 12: tokens at 13, 15.
        // Tokens computed through each step: 12 → 100, 13 → 110, 14 → 130, 15 → 140.
        StepTrace.Token[] a = [new(12, 10, 100), new(13, 10, 110), new(15, 10, 140)];
        StepTrace.Token[] b = [new(13, 12, 110), new(15, 12, 140)];
        var t = StepTrace.From([a, b], steps: 5, stepSeconds: 0.5, computedTokens: 50);
        Assert.Equal(5, t.Steps);
        Assert.Equal(100, t.StepMsMean);
        Assert.Equal(10, t.MsPerComputedToken);
        Assert.Equal(2, t.TtftStepsMax);    // A: 2 steps; B: 1
        Assert.Equal(1, t.TtftStepsP50);
        Assert.Equal(2, t.ItlStepsMax);     // gaps 1, 2 (A) and 2 (B)
        Assert.Equal(2, t.ItlStepsP50);
        Assert.Equal(30, t.ItlTokensMax);   // 110 → 140
        Assert.Equal(30, t.ItlTokensP50);   // gaps 10, 30, 30
        Assert.Equal(10, t.StepTokensP50);  // only steps 12 → 13 are consecutive and both seen: 10 tokens
        Assert.Equal(10, t.StepTokensMax);
    }

    [Fact]
    public async Task AnF16CacheRunDeliversEveryToken()
    {
        var path = SyntheticGguf.Write(new SyntheticModelSpec { Seed = 22 });
        var results = await BenchEngineCommand.RunAsync(new BenchEngineSettings(path, [2], PromptTokens: 9, GenTokens: 4, SharedPrefix: 0, BlockSize: 4,
            KvCacheType: Bulwark.Engine.KvCache.KvCacheType.F16), new StringWriter());
        Assert.Equal(8, results.Single().GeneratedTokens);
    }

    [Theory]
    [InlineData("f32", Bulwark.Engine.KvCache.KvCacheType.F32)]
    [InlineData(" F16", Bulwark.Engine.KvCache.KvCacheType.F16)]
    public void KvCacheDtypeNamesParse(string text, Bulwark.Engine.KvCache.KvCacheType type) =>
        Assert.Equal(type, BenchEngineCommand.ParseKvCacheType(text));

    [Fact]
    public void AnotherKvCacheDtypeNameIsRefused() =>
        Assert.Contains("--kv-cache-dtype must be f32 or f16; got \"bf16\"", Assert.Throws<ArgumentException>(() => BenchEngineCommand.ParseKvCacheType("bf16")).Message);

    [Fact]
    public async Task ATightKvBudgetStillDeliversEveryToken()
    {
        var path = SyntheticGguf.Write(new SyntheticModelSpec { Seed = 22 });
        // 3 prompts of 7 tokens fill 6 blocks of 4; growing to 12 written tokens needs 9, so they
        // wait or preempt each other (which one depends on when each arrives) but all finish.
        var results = await BenchEngineCommand.RunAsync(
            new BenchEngineSettings(path, [3], 7, 6, 0, KvCacheBytes: 6 * 2L * 2 * 4 * 32 * 4, BlockSize: 4), TextWriter.Null);
        Assert.Equal(18, results[0].GeneratedTokens);
        Assert.InRange(results[0].PeakKvBlocks, 3, 6);
    }

    [Theory]
    [InlineData("1,8,32", new[] { 1, 8, 32 })]
    [InlineData(" 4 ", new[] { 4 })]
    [InlineData("4096,1", new[] { 4096, 1 })]
    public void ConcurrencyListsParse(string text, int[] expected) => Assert.Equal(expected, BenchEngineCommand.ParseConcurrency(text));

    [Theory]
    [InlineData("")]
    [InlineData("0")]
    [InlineData("4097")]
    [InlineData("1,x")]
    [InlineData("-1")]
    public void BadConcurrencyListsNameTheValue(string text) =>
        Assert.StartsWith("--concurrency", Assert.Throws<ArgumentException>(() => BenchEngineCommand.ParseConcurrency(text)).Message);

    [Theory]
    [InlineData("1", 1L)]
    [InlineData("512MiB", 512L << 20)]
    [InlineData("2GiB", 2L << 30)]
    [InlineData("3 kb", 3000L)]
    [InlineData("7B", 7L)]
    public void SizesParse(string text, long expected) => Assert.Equal(expected, BenchEngineCommand.ParseSize(text));

    [Theory]
    [InlineData("0")]
    [InlineData("-5MiB")]
    [InlineData("lots")]
    [InlineData("99999999999GiB")]
    public void BadSizesAreRefused(string text) =>
        Assert.Contains(text, Assert.Throws<ArgumentException>(() => BenchEngineCommand.ParseSize(text)).Message);

    [Theory]
    [InlineData(0, 9, 4, "--prompt-tokens")]
    [InlineData(8, 0, 0, "--gen-tokens")]
    [InlineData(8, 1, 9, "--shared-prefix")]
    [InlineData(8, 1, -1, "--shared-prefix")]
    public void SettingsOutsideTheirRangesAreRefused(int prompt, int gen, int shared, string field) =>
        Assert.StartsWith(field, Assert.Throws<ArgumentException>(() => new BenchEngineSettings("m.gguf", [1], prompt, gen, shared).Validate()).Message);

    [Fact]
    public async Task TheCommandExitsWith2OnABadArgument()
    {
        var root = Bulwark.Bench.CommandCatalog.Root();
        var code = await root.Parse(["engine", "--model", "none.gguf", "--concurrency", "0"]).InvokeAsync();
        Assert.Equal(2, code);
    }

    [Fact]
    public void PercentilesUseTheNearestRank()
    {
        double[] values = [5, 1, 4, 2, 3];
        Assert.Equal(3, EngineBenchmark.Percentile(values, 50));
        Assert.Equal(5, EngineBenchmark.Percentile(values, 99));
        Assert.Equal(1, EngineBenchmark.Percentile(values, 0));
        Assert.Equal(1, EngineBenchmark.Percentile(values, 20));
        Assert.Equal(2, EngineBenchmark.Percentile(values, 21));
        Assert.Equal(0, EngineBenchmark.Percentile([], 50));
        Assert.Throws<ArgumentOutOfRangeException>(() => EngineBenchmark.Percentile(values, 101));
    }
}
