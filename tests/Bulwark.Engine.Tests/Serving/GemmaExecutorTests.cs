using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Scheduling;
using Bulwark.Engine.Tests.Parity;
using static Bulwark.Engine.Tests.Serving.StepDriver;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>
/// The batched paged executor on Gemma 2 (soft-capped attention token by token, caps that bend) and Gemma 3
/// (local and global RoPE, q/k norms, prefill tiles with windows) computes the session's logits: chunks that
/// straddle the window, decode past it, the prefix cache, several sequences at once.
/// </summary>
public class GemmaExecutorTests
{
    [Theory]
    [InlineData("gemma2", 5)]
    [InlineData("gemma2", 512)]
    [InlineData("gemma3", 3)]
    [InlineData("gemma3", 512)]
    public void BatchedEqualsTheSession(string arch, int chunk)
    {
        using var model = SyntheticGguf.Load(LlamaCppGemmaParityTests.Spec(arch) with { Context = 64 });
        Assert.Equal(arch == "gemma2" ? ModelArchitecture.Gemma2 : ModelArchitecture.Gemma3, model.Config.Architecture);
        Assert.Equal(0, new PagedLlamaExecutor(model).KvWindow); // global layers read everything: no block is released
        var random = new Random(chunk);
        using var executor = new PagedLlamaExecutor(model);
        var driver = new StepDriver(executor, blocks: 64, blockSize: 4, prefixCaching: true,
            new SchedulerOptions { MaxPrefillChunk = chunk, MaxBatchedTokens = 512, MaxSequences = 8 });
        executor.FillKvCache(float.NaN);
        var shared = Enumerable.Range(0, 20).Select(_ => random.Next(model.Config.VocabularySize)).ToArray();
        var prompts = new[] { 3, 15, 16, 17, 33 }.Select(n => Enumerable.Range(0, n).Select(_ => random.Next(model.Config.VocabularySize)).ToArray()).ToList();
        prompts.Add(shared.Concat(prompts[0]).ToArray());
        prompts.Add(shared.Concat(prompts[1]).ToArray());
        var runs = prompts.Select((p, i) => driver.Add(p, maxTokens: 10, atStep: i < 6 ? 0 : 8)).ToArray();
        driver.RunToEnd();
        for (var i = 0; i < prompts.Count; i++)
            AssertSame(Alone(model, prompts[i], 10), runs[i], $"{arch} chunk {chunk} prompt of {prompts[i].Length}");
    }

    [Fact]
    public void SoftCappingNeedsAnF32Cache()
    {
        using var model = SyntheticGguf.Load(LlamaCppGemmaParityTests.Spec("gemma2"));
        var e = Assert.Throws<NotSupportedException>(() => new PagedLlamaExecutor(model, kvCacheType: Bulwark.Engine.KvCache.KvCacheType.F16));
        Assert.Contains("f32 KV cache", e.Message);
    }

    [Fact]
    public void Gemma3WithAnF16CacheGivesTheOutputsOfAlone()
    {
        using var model = SyntheticGguf.Load(LlamaCppGemmaParityTests.Spec("gemma3") with { Context = 64 }); // no caps: f16 is fine
        var prompts = new[] { 4, 21 }.Select(n => Enumerable.Range(0, n).Select(i => (i * 37 + n) % model.Config.VocabularySize).ToArray()).ToArray();
        using var executor = new PagedLlamaExecutor(model, kvCacheType: Bulwark.Engine.KvCache.KvCacheType.F16);
        var driver = new StepDriver(executor, 64, 4, prefixCaching: false, new SchedulerOptions { MaxPrefillChunk = 5, MaxBatchedTokens = 64, MaxSequences = 8 });
        var runs = prompts.Select(p => driver.Add(p, maxTokens: 6)).ToArray();
        driver.RunToEnd();
        for (var i = 0; i < prompts.Length; i++)
        {
            using var alone = new PagedLlamaExecutor(model, kvCacheType: Bulwark.Engine.KvCache.KvCacheType.F16);
            var single = new StepDriver(alone, 64, 4, prefixCaching: false, new SchedulerOptions { MaxPrefillChunk = 1, MaxBatchedTokens = 64, MaxSequences = 8 });
            var expected = single.Add(prompts[i], 6);
            single.RunToEnd();
            Assert.Equal(expected.Ids, runs[i].Ids);
            var f32 = Alone(model, prompts[i], 6).Logits[0];
            var scale = Math.Max(1f, f32.Max(MathF.Abs));
            for (var v = 0; v < f32.Length; v++)
                Assert.True(MathF.Abs(f32[v] - runs[i].Logits[0][v]) <= 1e-2f * scale, $"prompt {i} logit {v}: f16 {runs[i].Logits[0][v]} f32 {f32[v]}");
        }
    }
}
