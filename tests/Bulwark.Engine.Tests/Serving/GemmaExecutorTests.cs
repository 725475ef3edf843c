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
        using var gemma3 = SyntheticGguf.Load(LlamaCppGemmaParityTests.Spec("gemma3"));
        using var f16 = new PagedLlamaExecutor(gemma3, kvCacheType: Bulwark.Engine.KvCache.KvCacheType.F16); // no caps: f16 is fine
    }
}
