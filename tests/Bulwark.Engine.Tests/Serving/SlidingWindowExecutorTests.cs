using Bulwark.Engine.KvCache;
using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Reference;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Scheduling;
using Bulwark.Engine.Synthesis;
using static Bulwark.Engine.Tests.Serving.StepDriver;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>
/// Sliding-window attention through whole models: the session's window (every layer, as Mistral v0.1, and every
/// other layer, as Gemma 2) changes nothing on sequences no longer than the window and something beyond it, and
/// the batched paged executor (prefill tiles, chunks that straddle the window, decode, an f16 cache, the prefix
/// cache) computes the session's logits. The kernels are held to a naive masked twin in <c>SlidingWindowAttentionTests</c>.
/// </summary>
public class SlidingWindowExecutorTests
{
    private const int Window = 6;

    private static int[] RandomPrompt(Random random, int length, int vocab) =>
        Enumerable.Range(0, length).Select(_ => random.Next(vocab)).ToArray();

    /// <summary>The same weights with a window: the model object only pairs config and weights, and the caller disposes the original.</summary>
    private static LlamaModel Windowed(LlamaModel model, int pattern, int firstWindowedLayer = 0) =>
        new(model.Config with { SlidingWindow = Window, SlidingWindowPattern = pattern, FirstWindowedLayer = firstWindowedLayer }, model.Weights);

    private static float[][] SessionLogits(LlamaModel model, int[] prompt)
    {
        using var session = new LlamaSession(model, prompt.Length);
        return prompt.Select((t, p) => session.Forward(t, p).ToArray()).ToArray();
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(2, 0)]
    [InlineData(1, 2)] // Qwen's max_window_layers: layers 0 and 1 global, layer 2 windowed
    public void TheWindowChangesNothingWithinItAndSomethingBeyondIt(int pattern, int firstWindowedLayer)
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Layers = 3, Seed = 41 });
        var prompt = RandomPrompt(new Random(1), 3 * Window, model.Config.VocabularySize);
        var full = SessionLogits(model, prompt);
        var windowed = SessionLogits(Windowed(model, pattern, firstWindowedLayer), prompt);
        for (var p = 0; p < Window; p++) Assert.Equal(full[p], windowed[p]);
        for (var p = Window; p < prompt.Length; p++)
            Assert.True(full[p].Zip(windowed[p]).Max(x => MathF.Abs(x.First - x.Second)) > 1e-3f, $"position {p}: the window made no difference");
    }

    [Theory]
    [InlineData(1, 1, 4, 0)]
    [InlineData(1, 5, 4, 0)]
    [InlineData(2, 5, 4, 0)]
    [InlineData(1, 512, 8, 0)]
    [InlineData(2, 3, 3, 0)]
    [InlineData(1, 5, 4, 1)]
    public void BatchedEqualsTheSessionAcrossTheWindow(int pattern, int chunk, int blockSize, int firstWindowedLayer)
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Layers = 3, Heads = 8, KvHeads = 2, Seed = 42 });
        var windowed = Windowed(model, pattern, firstWindowedLayer);
        var random = new Random(chunk);
        using var executor = new PagedLlamaExecutor(windowed);
        var driver = new StepDriver(executor, blocks: 64, blockSize, prefixCaching: false,
            new SchedulerOptions { MaxPrefillChunk = chunk, MaxBatchedTokens = 512, MaxSequences = 8 });
        executor.FillKvCache(float.NaN); // a read of a slot nobody wrote shows as NaN
        var prompts = new[] { 2, Window - 1, Window, Window + 1, 3 * Window + 2 }.Select(n => RandomPrompt(random, n, model.Config.VocabularySize)).ToArray();
        var runs = prompts.Select(p => driver.Add(p, maxTokens: Window + 2)).ToArray(); // decoding crosses the window too
        driver.RunToEnd();
        for (var i = 0; i < prompts.Length; i++)
            AssertSame(Alone(windowed, prompts[i], Window + 2), runs[i], $"pattern {pattern} chunk {chunk} prompt of {prompts[i].Length}");
    }

    [Fact]
    public void AnF16CacheGivesTheOutputsOfAlone()
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Layers = 2, Heads = 8, KvHeads = 2, Seed = 43 });
        var windowed = Windowed(model, 1);
        var prompts = new[] { 3, 2 * Window + 1 }.Select(n => RandomPrompt(new Random(n), n, model.Config.VocabularySize)).ToArray();
        using var executor = new PagedLlamaExecutor(windowed, kvCacheType: KvCacheType.F16);
        var driver = new StepDriver(executor, 64, 4, prefixCaching: false, new SchedulerOptions { MaxPrefillChunk = 5, MaxBatchedTokens = 64, MaxSequences = 8 });
        var runs = prompts.Select(p => driver.Add(p, maxTokens: 4)).ToArray();
        driver.RunToEnd();
        for (var i = 0; i < prompts.Length; i++)
        {
            using var alone = new PagedLlamaExecutor(windowed, kvCacheType: KvCacheType.F16);
            var single = new StepDriver(alone, 64, 4, prefixCaching: false, new SchedulerOptions { MaxPrefillChunk = 1, MaxBatchedTokens = 64, MaxSequences = 8 });
            var expected = single.Add(prompts[i], 4);
            single.RunToEnd();
            Assert.Equal(expected.Ids, runs[i].Ids);
            var f32 = Alone(windowed, prompts[i], 4);
            for (var v = 0; v < f32.Logits[0].Length; v++)
                Assert.True(MathF.Abs(f32.Logits[0][v] - runs[i].Logits[0][v]) <= 1e-2f * Math.Max(1f, f32.Logits[0].Max(MathF.Abs)), $"prompt {i} logit {v}");
        }
    }

    [Fact]
    public void PrefixCacheHitsGiveTheSessionsLogits()
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Layers = 2, Seed = 44 });
        var windowed = Windowed(model, 1);
        var random = new Random(9);
        var shared = RandomPrompt(random, 3 * Window, model.Config.VocabularySize);
        var prompts = Enumerable.Range(0, 3).Select(i => shared.Concat(RandomPrompt(random, 2 + i, model.Config.VocabularySize)).ToArray()).ToArray();
        using var executor = new PagedLlamaExecutor(windowed);
        var driver = new StepDriver(executor, 64, 4, prefixCaching: true, new SchedulerOptions { MaxPrefillChunk = 7, MaxBatchedTokens = 64, MaxSequences = 8 });
        var runs = prompts.Select((p, i) => driver.Add(p, maxTokens: 3, atStep: 6 * i)).ToArray();
        driver.RunToEnd();
        for (var i = 0; i < prompts.Length; i++)
            AssertSame(Alone(windowed, prompts[i], 3), runs[i], $"prompt {i}");
        Assert.True(driver.Blocks.PrefixHitTokens > 0, "the later prompts should have hit the shared prefix");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BlocksOutsideTheWindowAreReleasedSoATightCacheHoldsALongGeneration(bool prefixCaching)
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Layers = 2, Seed = 45 });
        var windowed = Windowed(model, 1);
        using var executor = new PagedLlamaExecutor(windowed);
        Assert.Equal(Window, executor.KvWindow);
        // 10 blocks of 2 slots: 20 positions, while each sequence reaches 40 and two run at once (and a third shares the first's prompt).
        var driver = new StepDriver(executor, blocks: 10, blockSize: 2, prefixCaching,
            new SchedulerOptions { MaxPrefillChunk = 3, MaxBatchedTokens = 16, MaxSequences = 2 });
        executor.FillKvCache(float.NaN);
        var random = new Random(3);
        var prompts = new[] { 10, 7 }.Select(n => RandomPrompt(random, n, model.Config.VocabularySize)).ToList();
        prompts.Add(prompts[0]);
        var runs = prompts.Select((p, i) => driver.Add(p, maxTokens: 40 - p.Length, atStep: 30 * i)).ToArray();
        driver.RunToEnd();
        for (var i = 0; i < prompts.Count; i++)
            AssertSame(Alone(windowed, prompts[i], 40 - prompts[i].Length), runs[i], $"prompt {i}");
        Assert.Equal(0, driver.Preemptions);
        Assert.Equal(0, driver.Blocks.UsedBlocks);
    }

    [Fact]
    public void InterleavedGlobalLayersKeepEveryBlock()
    {
        using (var qwenLike = SyntheticGguf.Load(new SyntheticModelSpec { Layers = 2, Seed = 46 }))
        using (var global0 = new PagedLlamaExecutor(Windowed(qwenLike, 1, firstWindowedLayer: 1)))
            Assert.Equal(0, global0.KvWindow); // layer 0 global: nothing freed either
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Layers = 2, Seed = 46 });
        using var executor = new PagedLlamaExecutor(Windowed(model, 2));
        Assert.Equal(0, executor.KvWindow); // layer 1 sees the whole context, so no block is ever dead
        using var full = new PagedLlamaExecutor(model);
        Assert.Equal(0, full.KvWindow);
    }

    [Fact]
    public async Task TheEngineServesAGenerationLongerThanItsWholeCache()
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Layers = 2, Seed = 47 });
        var windowed = Windowed(model, 1);
        var prompt = RandomPrompt(new Random(5), 5, model.Config.VocabularySize);
        // 6 blocks of 2 slots hold 12 positions; the sequence reaches 45. Steps of at most 2 tokens: the window's
        // 3 blocks, the step's, and one at each end fit in 6 (Validate's bound; a larger chunk is refused).
        var scheduler = new SchedulerOptions { MaxPrefillChunk = 2, MaxBatchedTokens = 8 };
        using (var tooBig = new Bulwark.Engine.Serving.LlmEngine(new PagedLlamaExecutor(windowed),
            new Bulwark.Engine.Serving.EngineOptions { KvCacheBlocks = 6, BlockSize = 2, Scheduler = scheduler with { MaxPrefillChunk = 4 } }))
            Assert.Contains("need 7 KV blocks; the cache holds 6", Assert.Throws<ArgumentOutOfRangeException>(() => tooBig.Validate(new Bulwark.Engine.Serving.EngineRequest
            {
                PromptTokens = prompt,
                Sampling = new Bulwark.Engine.Serving.Sampling.SamplingParams { Temperature = 0, MaxTokens = 40, IgnoreEos = true },
            })).Message);
        using var engine = new Bulwark.Engine.Serving.LlmEngine(new PagedLlamaExecutor(windowed),
            new Bulwark.Engine.Serving.EngineOptions { KvCacheBlocks = 6, BlockSize = 2, Scheduler = scheduler });
        var events = await EngineHarness.CollectAsync(engine, new Bulwark.Engine.Serving.EngineRequest
        {
            PromptTokens = prompt,
            Sampling = new Bulwark.Engine.Serving.Sampling.SamplingParams { Temperature = 0, MaxTokens = 40, IgnoreEos = true },
        });
        Assert.Equal(Alone(windowed, prompt, 40).Ids, EngineHarness.Ids(events));
        Assert.True(engine.Counters.KvBlocksPeak <= 6, $"peak {engine.Counters.KvBlocksPeak} blocks");
        Assert.Equal(0, engine.Counters.Preemptions);
    }
}
