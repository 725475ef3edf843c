using Bulwark.Engine.KvCache;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Serving.Scheduling;
using Bulwark.Engine.Synthesis;
using static Bulwark.Engine.Tests.Serving.StepDriver;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>
/// The paged, batched forward pass against <see cref="Bulwark.Engine.Model.Reference.LlamaSession"/> (one sequence, contiguous
/// cache, one token at a time) on small random models of each supported shape.
/// </summary>
public class PagedLlamaExecutorTests
{
    private static int[] RandomPrompt(Random random, int length, int vocab) =>
        Enumerable.Range(0, length).Select(_ => random.Next(vocab)).ToArray();

    private static SchedulerOptions Chunked(int chunk, int maxBatched = 512, int maxSeqs = 64) =>
        new() { MaxPrefillChunk = chunk, MaxBatchedTokens = maxBatched, MaxSequences = maxSeqs };

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(16)]
    [InlineData(512)] // the whole prompt in one step
    public void LogitsEqualTheSessionForEveryPrefillChunkSize(int chunk)
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec());
        var prompt = RandomPrompt(new Random(chunk), 37, model.Config.VocabularySize);
        using var executor = new PagedLlamaExecutor(model);
        var driver = new StepDriver(executor, blocks: 16, blockSize: 8, prefixCaching: false, Chunked(chunk));
        var run = driver.Add(prompt, maxTokens: 6);
        driver.RunToEnd();
        AssertSame(Alone(model, prompt, 6), run, $"chunk {chunk}");
    }

    [Theory]
    [InlineData("llama", 4, 4)] // multi-head
    [InlineData("llama", 4, 2)] // grouped-query
    [InlineData("llama", 4, 1)] // multi-query
    [InlineData("qwen2", 4, 2)] // q/k/v biases, rotate-half RoPE
    [InlineData("qwen3", 4, 1)] // per-head q/k norm
    public void EveryArchitectureAndHeadLayoutMatchesTheSession(string architecture, int heads, int kvHeads)
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Architecture = architecture, Heads = heads, KvHeads = kvHeads, Seed = (ulong)(heads * 10 + kvHeads) });
        var random = new Random(7);
        using var executor = new PagedLlamaExecutor(model);
        var driver = new StepDriver(executor, blocks: 32, blockSize: 4, prefixCaching: false, Chunked(5));
        var prompts = new[] { 1, 9, 23 }.Select(n => RandomPrompt(random, n, model.Config.VocabularySize)).ToArray();
        var runs = prompts.Select(p => driver.Add(p, maxTokens: 5)).ToArray();
        driver.RunToEnd();
        for (var i = 0; i < prompts.Length; i++)
            AssertSame(Alone(model, prompts[i], 5), runs[i], $"{architecture} {heads}/{kvHeads} prompt {i}");
    }

    [Theory]
    [InlineData(1, 64, 512, 8, 16)]  // roomy cache, whole prompts
    [InlineData(2, 40, 7, 3, 4)]     // small chunks, few seats
    [InlineData(3, 14, 9, 6, 4)]     // tight cache: preemption by recompute
    [InlineData(4, 6, 12, 4, 8)]     // tighter still, larger blocks
    public void BatchedEqualsAloneForRandomArrivalsChunksAndPriorities(int seed, int blocks, int maxBatched, int maxSeqs, int blockSize)
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Seed = (ulong)seed });
        var random = new Random(seed);
        using var executor = new PagedLlamaExecutor(model);
        var driver = new StepDriver(executor, blocks, blockSize, prefixCaching: true, Chunked(maxBatched, maxBatched, maxSeqs));
        var cases = Enumerable.Range(0, 8).Select(_ =>
        (
            Prompt: RandomPrompt(random, random.Next(1, 30), model.Config.VocabularySize),
            MaxTokens: random.Next(1, 9),
            Priority: random.Next(3),
            AtStep: random.Next(12)
        )).ToArray();
        var runs = cases.Select(c => driver.Add(c.Prompt, c.MaxTokens, c.Priority, atStep: c.AtStep)).ToArray();
        driver.RunToEnd();

        for (var i = 0; i < cases.Length; i++)
            AssertSame(Alone(model, cases[i].Prompt, cases[i].MaxTokens), runs[i], $"seed {seed} request {i}");
        Assert.Equal(0, driver.Blocks.UsedBlocks);
        if (blocks < 20)
            Assert.True(driver.Preemptions > 0, "the tight cache should have forced preemptions");
    }

    [Theory]
    [InlineData(1, 64, 512, 8, 16)]
    [InlineData(3, 14, 9, 6, 4)] // preemption by recompute
    public void AnF16CacheGivesBatchedTheOutputsOfAloneAndStaysCloseToF32(int seed, int blocks, int maxBatched, int maxSeqs, int blockSize)
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Seed = (ulong)seed, Heads = 8, KvHeads = 2 });
        var random = new Random(seed);
        using var executor = new PagedLlamaExecutor(model, kvCacheType: KvCacheType.F16);
        Assert.Equal(KvCacheType.F16, executor.KvCacheType);
        Assert.Equal(new PagedLlamaExecutor(model).KvBytesPerBlock(blockSize) / 2, executor.KvBytesPerBlock(blockSize));
        var driver = new StepDriver(executor, blocks, blockSize, prefixCaching: true, Chunked(maxBatched, maxBatched, maxSeqs));
        executor.FillKvCache(float.NaN); // a read of a slot nobody wrote shows as NaN
        var cases = Enumerable.Range(0, 6).Select(_ =>
        (
            Prompt: RandomPrompt(random, random.Next(1, 30), model.Config.VocabularySize),
            MaxTokens: random.Next(1, 9),
            AtStep: random.Next(12)
        )).ToArray();
        var runs = cases.Select(c => driver.Add(c.Prompt, c.MaxTokens, atStep: c.AtStep)).ToArray();
        driver.RunToEnd();
        for (var i = 0; i < cases.Length; i++)
        {
            // Alone through an F16 executor of its own: the same rounded keys and values, so the same outputs.
            using var alone = new PagedLlamaExecutor(model, kvCacheType: KvCacheType.F16);
            var single = new StepDriver(alone, 64, blockSize, prefixCaching: false, Chunked(512));
            var expected = single.Add(cases[i].Prompt, cases[i].MaxTokens);
            single.RunToEnd();
            AssertSame(expected, runs[i], $"f16 seed {seed} request {i}");
            // And near the f32 session: keys and values rounded to 11 significant bits move the logits a little.
            var f32 = Alone(model, cases[i].Prompt, cases[i].MaxTokens);
            var e = f32.Logits[0];
            var a = runs[i].Logits[0];
            var scale = Math.Max(1f, e.Max(MathF.Abs));
            for (var v = 0; v < e.Length; v++)
                Assert.True(MathF.Abs(e[v] - a[v]) <= 1e-2f * scale, $"f16 seed {seed} request {i} logit {v}: {a[v]} vs f32 {e[v]}");
        }
        Assert.Equal(0, driver.Blocks.UsedBlocks);
    }

    [Fact]
    public void AnUnknownKvCacheTypeIsRefused()
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec());
        Assert.Throws<ArgumentOutOfRangeException>(() => new PagedLlamaExecutor(model, kvCacheType: (KvCacheType)7));
    }

    [Fact]
    public void PrefixCacheOnAndOffGiveTheSameOutputs()
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Seed = 5 });
        var random = new Random(5);
        var system = RandomPrompt(random, 21, model.Config.VocabularySize);
        var prompts = Enumerable.Range(0, 4).Select(i => system.Concat(RandomPrompt(random, 1 + i * 3, model.Config.VocabularySize)).ToArray()).ToArray();

        GreedyRun[] Run(bool prefixCaching, out long hits)
        {
            using var executor = new PagedLlamaExecutor(model);
            var driver = new StepDriver(executor, 64, 4, prefixCaching, Chunked(8));
            // The first request finishes before the rest arrive, so its blocks are published.
            var runs = prompts.Select((p, i) => driver.Add(p, 4, atStep: i == 0 ? 0 : 20)).ToArray();
            driver.RunToEnd();
            hits = driver.Blocks.PrefixHitTokens;
            return runs;
        }

        var on = Run(true, out var hitsOn);
        var off = Run(false, out var hitsOff);
        for (var i = 0; i < prompts.Length; i++)
        {
            AssertSame(off[i], on[i], $"request {i} cache on vs off");
            AssertSame(Alone(model, prompts[i], 4), on[i], $"request {i} vs session");
        }
        Assert.Equal(3 * 20, hitsOn); // 5 full blocks of 4 system tokens per later request
        Assert.Equal(0, hitsOff);
    }

    [Fact]
    public void BlocksFreedByOneTenantAreOverwrittenBeforeAnotherTenantReadsThem()
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Seed = 6 });
        var random = new Random(6);
        var prompts = Enumerable.Range(0, 3).Select(i => RandomPrompt(random, 10 + 7 * i, model.Config.VocabularySize)).ToArray();
        using var executor = new PagedLlamaExecutor(model);
        var driver = new StepDriver(executor, 24, 4, prefixCaching: true, Chunked(6));
        foreach (var p in prompts)
            driver.Add(p, 5, tenant: "a");
        driver.RunToEnd();

        // Every slot now holds NaN: a read of any slot tenant B did not write itself poisons its logits.
        executor.FillKvCache(float.NaN);
        var runs = prompts.Select(p => driver.Add(p, 5, tenant: "b", atStep: 0)).ToArray();
        driver.RunToEnd();
        for (var i = 0; i < prompts.Length; i++)
        {
            Assert.All(runs[i].Logits, row => Assert.All(row, x => Assert.True(float.IsFinite(x))));
            AssertSame(Alone(model, prompts[i], 5), runs[i], $"tenant b request {i}");
        }
        Assert.Equal(0, driver.Blocks.PrefixHitTokens);
    }

    [Fact]
    public async Task TheEngineOverTheRealModelGivesEachChoiceTheSessionsGreedyIds()
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Architecture = "qwen2", Seed = 8 });
        using var executor = new PagedLlamaExecutor(model);
        using var engine = new LlmEngine(executor, new EngineOptions
        {
            KvCacheBlocks = 40,
            BlockSize = 4,
            Scheduler = Chunked(5, 16, 8),
        });
        var random = new Random(8);
        var prompts = Enumerable.Range(0, 5).Select(i => RandomPrompt(random, 3 + 5 * i, model.Config.VocabularySize)).ToArray();
        // n = 3 greedy choices fork from a shared partial block: each must copy it before writing.
        var sampling = new SamplingParams { Temperature = 0, MaxTokens = 6, IgnoreEos = true, N = 3, Logprobs = true };
        var tasks = prompts.Select(p => Task.Run(() => EngineHarness.CollectAsync(engine,
            new EngineRequest { PromptTokens = p, Sampling = sampling }))).ToArray();
        var results = await Task.WhenAll(tasks);
        for (var i = 0; i < prompts.Length; i++)
        {
            var alone = Alone(model, prompts[i], 6);
            for (var choice = 0; choice < 3; choice++)
            {
                var events = results[i].Where(e => e.Index == choice).ToArray();
                Assert.Equal(alone.Ids, events.Select(e => e.TokenId));
                for (var t = 0; t < events.Length; t++)
                    Assert.Equal(LogSoftmax(alone.Logits[t], alone.Ids[t]), events[t].Logprob!.Value, 1e-3);
            }
        }
    }

    [Fact]
    public void StepsAfterTheLargestOneAllocateNoManagedMemory()
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Architecture = "qwen2", Seed = 9 });
        using var executor = new PagedLlamaExecutor(model);
        var driver = new StepDriver(executor, 32, 4, prefixCaching: true, Chunked(64));
        var random = new Random(9);
        foreach (var length in new[] { 5, 9, 14 })
            driver.Add(RandomPrompt(random, length, model.Config.VocabularySize), maxTokens: 8);
        driver.RunToEnd();
        // The first step (all three prompts) sizes the buffers; every decode step after it reuses them.
        Assert.True(driver.ExecuteAllocations.Count > 5);
        // At most one later step may show a one-off of the runtime's (see SessionKernelTests); an
        // allocation per step shows in all of them.
        var allocating = driver.ExecuteAllocations.Skip(1).Count(bytes => bytes != 0);
        Assert.True(allocating <= 1, $"bytes allocated per step: {string.Join(", ", driver.ExecuteAllocations)}");
    }

    [Fact]
    public void ArgumentsAreCheckedWithClearMessages()
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Context = 64 });
        Assert.Contains("between 1 and the model's 64; got 65",
            Assert.Throws<ArgumentOutOfRangeException>(() => new PagedLlamaExecutor(model, 65)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new PagedLlamaExecutor(model, 0));
        using var executor = new PagedLlamaExecutor(model, 64);
        Assert.Equal(64, executor.MaxContextLength);
        Assert.Contains("AllocateKvCache", Assert.Throws<InvalidOperationException>(() => executor.Execute(new StepBatch(), [])).Message);
        executor.AllocateKvCache(4, 16);
        Assert.Throws<InvalidOperationException>(() => executor.AllocateKvCache(4, 16));
        // 2 layers × 16 slots × (2 kv heads × 16) floats × K and V × 4 bytes
        Assert.Equal(2L * 16 * 32 * 2 * 4, executor.KvBytesPerBlock(16));
    }

    private static double LogSoftmax(float[] logits, int id)
    {
        var max = logits.Max();
        var sum = logits.Sum(x => Math.Exp(x - max));
        return logits[id] - max - Math.Log(sum);
    }
}
