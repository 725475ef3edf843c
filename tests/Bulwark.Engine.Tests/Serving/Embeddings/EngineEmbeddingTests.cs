using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Reference;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Embeddings;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Serving.Scheduling;
using Bulwark.Engine.Synthesis;

namespace Bulwark.Engine.Tests.Serving.Embeddings;

/// <summary>
/// Embeddings through the engine's own steps (batched with each other and with generations, chunked,
/// preempted) against <see cref="ReferenceEmbedding"/>, the one-token-at-a-time session pooled by definition.
/// </summary>
public class EngineEmbeddingTests
{
    private static int[] RandomInput(Random random, int length, int vocab) =>
        Enumerable.Range(0, length).Select(_ => random.Next(vocab)).ToArray();

    private static EngineOptions Options(int blocks, int chunk, int maxBatched = 512, int maxSeqs = 16) => new()
    {
        KvCacheBlocks = blocks,
        BlockSize = 4,
        Scheduler = new SchedulerOptions { MaxPrefillChunk = chunk, MaxBatchedTokens = maxBatched, MaxSequences = maxSeqs },
    };

    /// <summary>Waits for the step loop to publish a state (it completes a request's stream before it publishes its counters); polls, never sleeps a fixed time.</summary>
    private static async Task Until(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the engine never reached the expected state");
            await Task.Delay(5);
        }
    }

    /// <summary>Same direction and the same values: the batched pass is the session's arithmetic in another order.</summary>
    private static void AssertClose(float[] expected, float[] actual, string because)
    {
        Assert.Equal(expected.Length, actual.Length);
        Assert.True(EmbeddingVector.Cosine(expected, actual) >= 0.99999, $"{because}: cosine {EmbeddingVector.Cosine(expected, actual)}");
        var scale = expected.Max(MathF.Abs);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(MathF.Abs(expected[i] - actual[i]) <= 1e-4f * scale, $"{because}: element {i} is {actual[i]}, expected {expected[i]}");
    }

    [Theory]
    [InlineData(PoolingType.Mean, 1)]
    [InlineData(PoolingType.Mean, 5)]
    [InlineData(PoolingType.Mean, 512)]
    [InlineData(PoolingType.Last, 1)]
    [InlineData(PoolingType.Last, 5)]
    [InlineData(PoolingType.Last, 512)]
    [InlineData(PoolingType.Cls, 3)]
    [InlineData(PoolingType.Cls, 512)]
    public async Task BatchedEmbeddingsEqualTheReferenceForEveryPoolingAndChunkSize(PoolingType pooling, int chunk)
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Architecture = "qwen3", Seed = 11 });
        using var executor = new PagedLlamaExecutor(model);
        using var engine = new LlmEngine(executor, Options(blocks: 128, chunk));
        var random = new Random(chunk);
        var inputs = Enumerable.Range(0, 6).Select(_ => RandomInput(random, random.Next(1, 31), model.Config.VocabularySize)).ToArray();

        var vectors = await Task.WhenAll(inputs.Select(t => engine.EmbedAsync(new EmbeddingRequest { Tokens = t, Pooling = pooling })));

        for (var i = 0; i < inputs.Length; i++)
            AssertClose(ReferenceEmbedding.Embed(model, inputs[i], pooling), vectors[i], $"{pooling} chunk {chunk} input {i}");
        Assert.All(vectors, v => Assert.Equal(1.0, Math.Sqrt(v.Sum(x => (double)x * x)), 5));
    }

    [Fact]
    public async Task WithoutNormalisationTheVectorIsTheRawPooledState()
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Seed = 3 });
        using var executor = new PagedLlamaExecutor(model);
        using var engine = new LlmEngine(executor, Options(blocks: 64, chunk: 4));
        int[] input = [5, 17, 99, 3, 250, 7, 8];

        var raw = await engine.EmbedAsync(new EmbeddingRequest { Tokens = input, Pooling = PoolingType.Mean, Normalize = false });

        AssertClose(ReferenceEmbedding.Embed(model, input, PoolingType.Mean, normalize: false), raw, "raw mean");
        Assert.NotEqual(1.0, Math.Sqrt(raw.Sum(x => (double)x * x)), 3);
    }

    [Theory]
    [InlineData(1, 64, 512)] // roomy
    [InlineData(2, 14, 6)]   // tight cache and small steps: embeddings and generations preempt each other
    public async Task EmbeddingsAndGenerationsInTheSameStepsGiveWhatEachGivesAlone(int seed, int blocks, int maxBatched)
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Seed = (ulong)seed });
        var vocab = model.Config.VocabularySize;
        var random = new Random(seed);
        var options = Options(blocks, chunk: maxBatched, maxBatched, maxSeqs: 6);
        var generations = Enumerable.Range(0, 4).Select(_ => new EngineRequest
        {
            PromptTokens = RandomInput(random, random.Next(1, 20), vocab),
            Sampling = new SamplingParams { Temperature = 0, MaxTokens = random.Next(1, 10) },
        }).ToList();
        var inputs = Enumerable.Range(0, 6).Select(_ => RandomInput(random, random.Next(1, 30), vocab)).ToArray();
        var alone = await EngineHarness.AloneAsync(() => new PagedLlamaExecutor(model), generations, options);

        // Everything arrives before the first step runs, so the tight case must share (and preempt).
        using var executor = new PagedLlamaExecutor(model);
        var paused = new PausingModel(executor, pauseAtStep: 1);
        using var engine = new LlmEngine(paused, options);
        var generated = generations.Select(g => EngineHarness.CollectAsync(engine, g)).ToArray();
        var embedded = inputs.Select((t, i) => engine.EmbedAsync(new EmbeddingRequest { Tokens = t, Pooling = i % 2 == 0 ? PoolingType.Mean : PoolingType.Last })).ToArray();
        paused.Resume();

        var ids = await Task.WhenAll(generated);
        for (var i = 0; i < generations.Count; i++)
            Assert.Equal(alone[i], EngineHarness.Ids(ids[i]));
        var vectors = await Task.WhenAll(embedded);
        for (var i = 0; i < inputs.Length; i++)
            AssertClose(ReferenceEmbedding.Embed(model, inputs[i], i % 2 == 0 ? PoolingType.Mean : PoolingType.Last), vectors[i], $"seed {seed} input {i}");
        await Until(() => engine.Counters.Running == 0 && engine.Counters.KvBlocksUsed == 0);
        if (blocks <= 14)
            Assert.True(engine.Counters.Preemptions > 0, "the tight cache should have forced preemptions");
    }

    [Fact]
    public async Task AnEmbeddingLeavesNoKvBehindNorAnythingInThePrefixCache()
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Seed = 5 });
        using var executor = new PagedLlamaExecutor(model);
        using var engine = new LlmEngine(executor, Options(blocks: 32, chunk: 8));
        var input = Enumerable.Range(1, 40).ToArray();

        var first = await engine.EmbedAsync(new EmbeddingRequest { Tokens = input, Pooling = PoolingType.Mean });
        var second = await engine.EmbedAsync(new EmbeddingRequest { Tokens = input, Pooling = PoolingType.Mean });

        Assert.Equal(first, second);
        await Until(() => engine.Counters.KvBlocksUsed == 0 && engine.DirtyFreeBlocks == 0);
        Assert.Equal(0, engine.Counters.PrefixCachedBlocks);
        Assert.Equal(0, engine.Counters.PrefixCacheHitTokens);
    }

    [Fact]
    public async Task ACancelledEmbeddingFreesItsBlocks()
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Seed = 6 });
        using var executor = new PagedLlamaExecutor(model);
        var paused = new PausingModel(executor, pauseAtStep: 1);
        using var engine = new LlmEngine(paused, Options(blocks: 32, chunk: 2));
        using var cancel = new CancellationTokenSource();
        var task = engine.EmbedAsync(new EmbeddingRequest { Tokens = Enumerable.Range(1, 30).ToArray(), Pooling = PoolingType.Last }, cancel.Token);
        // Admitted (the loop publishes its queues before the step that pauses); the step may have started or not.
        await Until(() => engine.Counters.Waiting + engine.Counters.Running > 0);

        cancel.Cancel();
        paused.Resume();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => task);
        await Until(() => engine.Counters.KvBlocksUsed == 0 && engine.Counters.Running == 0 && engine.Counters.Waiting == 0);
    }

    [Fact]
    public async Task InputsAreBoundedByTheContextAndTheVocabulary()
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Context = 32 });
        using var executor = new PagedLlamaExecutor(model);
        using var engine = new LlmEngine(executor, Options(blocks: 64, chunk: 16));
        EmbeddingRequest Of(int[] tokens, PoolingType pooling = PoolingType.Mean) => new() { Tokens = tokens, Pooling = pooling };

        Assert.Equal(64, (await engine.EmbedAsync(Of(Enumerable.Repeat(7, 32).ToArray()))).Length); // at the context length
        Assert.Equal(64, (await engine.EmbedAsync(Of(Enumerable.Repeat(7, 31).ToArray()))).Length); // below
        var over = Assert.Throws<ArgumentOutOfRangeException>(() => engine.Validate(Of(Enumerable.Repeat(7, 33).ToArray())));
        Assert.Contains("33 tokens; the context length is 32", over.Message);
        Assert.Throws<ArgumentException>(() => engine.Validate(Of([])));
        Assert.Contains("between 0 and 511; got 512", Assert.Throws<ArgumentOutOfRangeException>(() => engine.Validate(Of([512]))).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => engine.Validate(Of([1], PoolingType.None)));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => engine.EmbedAsync(Of(Enumerable.Repeat(7, 33).ToArray())));
    }

    [Fact]
    public async Task AnExecutorWithoutEmbeddingsRefusesThem()
    {
        using var engine = new LlmEngine(new PagedToyModel(), Options(blocks: 8, chunk: 4));
        await Assert.ThrowsAsync<NotSupportedException>(() => engine.EmbedAsync(new EmbeddingRequest { Tokens = [1, 2], Pooling = PoolingType.Mean }));
    }
}
