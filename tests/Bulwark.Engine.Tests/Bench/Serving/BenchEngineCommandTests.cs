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
        Assert.Contains("concurrency 3: 12/12 tokens", progress.ToString());

        using var json = JsonDocument.Parse(BenchEngineCommand.ToJson(results));
        var first = json.RootElement[0];
        foreach (var field in new[] { "concurrency", "prefill_tokens_per_s", "decode_tokens_per_s", "ttft_ms_p50", "ttft_ms_p99", "itl_ms_p50", "itl_ms_p99", "peak_kv_blocks" })
            Assert.True(first.TryGetProperty(field, out _), $"missing {field}");
        Assert.Equal(3, json.RootElement[1].GetProperty("concurrency").GetInt32());
        Assert.Contains("decode speed-up at 3 vs 1", BenchEngineCommand.ToTable(results));
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
