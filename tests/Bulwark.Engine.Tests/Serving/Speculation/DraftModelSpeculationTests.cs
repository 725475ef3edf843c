using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Serving.Scheduling;
using Bulwark.Engine.Serving.Speculation;
using Bulwark.Engine.Synthesis;
using static Bulwark.Engine.Tests.Serving.EngineHarness;

namespace Bulwark.Engine.Tests.Serving.Speculation;

/// <summary>
/// Draft-model speculation: a second model proposes the drafts from its own paged KV cache. Output is the same as
/// without speculation whatever the draft model says; a draft model that computes the target's own function has
/// every draft accepted (which also proves its shadow KV is right: the toy model reads NaN from any slot nobody
/// wrote); a draft model that is sometimes wrong has drafts rejected and the output unchanged.
/// </summary>
public class DraftModelSpeculationTests
{
    private static readonly SamplingParams Greedy = new() { Temperature = 0, MaxTokens = 12, IgnoreEos = true };

    private static SpeculativeConfig ByDraftModel(int k) => new() { Method = SpeculativeMethod.DraftModel, NumSpeculativeTokens = k };

    [Theory]
    [InlineData(1, 64, 512, 8, 64)]  // roomy caches
    [InlineData(2, 24, 10, 3, 64)]   // small step budget: drafts cut to what is left
    [InlineData(3, 12, 9, 4, 64)]    // tight target cache: preemption by recompute
    [InlineData(4, 64, 512, 8, 6)]   // tight draft cache: sequences without draft blocks do not draft
    public async Task GreedyIdsEqualPlainDecodingWithAnExactAndASometimesWrongDraftModel(int seed, int blocks, int maxBatchedTokens, int maxSeqs, int draftBlocks)
    {
        var random = new Random(seed);
        var options = new EngineOptions
        {
            KvCacheBlocks = blocks,
            BlockSize = 4,
            Scheduler = new SchedulerOptions { MaxBatchedTokens = maxBatchedTokens, MaxPrefillChunk = maxBatchedTokens, MaxSequences = maxSeqs },
        };
        var plain = Enumerable.Range(0, 12)
            .Select(_ => new EngineRequest
            {
                PromptTokens = RandomPrompt(random, random.Next(1, 20), random.Next(2, 32)),
                Sampling = Greedy with { MaxTokens = random.Next(1, 14) },
                Priority = random.Next(3),
            })
            .ToList();
        var expected = await AloneAsync(() => new PagedToyModel(), plain, options);
        var mixed = plain.Select((r, i) => i % 3 == 2 ? r : r with { Speculative = ByDraftModel(1 + i % 5) }).ToList();

        foreach (var wrongEvery in new[] { 0, 3 })
        {
            var draft = new RecordingDraft(new PagedToyModel(), wrongEvery);
            var model = new PausingModel(new PagedToyModel(), pauseAtStep: 1);
            using var engine = new LlmEngine(model, options with { DraftModel = new DraftModelOptions(draft) { KvCacheBlocks = draftBlocks } });
            var tasks = mixed.Select(r => CollectAsync(engine, r)).ToList();
            model.Resume();
            var results = await Task.WhenAll(tasks);
            for (var i = 0; i < mixed.Count; i++)
                Assert.Equal(expected[i], Ids(results[i]));
            Assert.True(engine.Counters.AcceptedDraftTokens > 0, "no draft was accepted");
            if (wrongEvery == 0 && draftBlocks >= 64)
                Assert.Equal(engine.Counters.DraftTokens, engine.Counters.AcceptedDraftTokens);
            else
                Assert.True(engine.Counters.DraftTokens > engine.Counters.AcceptedDraftTokens || draftBlocks < 64, "no draft was rejected");
            await WaitUntilAsync(() => engine.Counters.KvBlocksUsed == 0 && engine.Counters.Running == 0);
            engine.Dispose();
            // Every draft block a shadow took was cleared when its request ended (it held the request's data).
            Assert.True(draft.Used > 0);
            Assert.Empty(draft.Dirty);
        }
    }

    [Fact]
    public async Task TheSameSyntheticLlamaAsItsOwnDraftHasEveryDraftAcceptedAndTheSameTokensAndLogprobs()
    {
        var path = SyntheticGguf.Write(new SyntheticModelSpec { Vocab = 260, Seed = 31, Context = 256 });
        using var loaded = EngineFactory.Load(path, new EngineOptions { KvCacheBlocks = 128, BlockSize = 8 }, draftModel: new DraftModelLoad(path));
        Assert.True(loaded.Engine.HasDraftModel);
        var random = new Random(8);
        var requests = Enumerable.Range(0, 6).Select(i => new EngineRequest
        {
            PromptTokens = RandomPrompt(random, random.Next(4, 40), 3 + i * 6),
            Sampling = Greedy with { MaxTokens = 30, TopLogprobs = 3 },
        }).ToList();
        var plain = new List<List<TokenEvent>>();
        foreach (var r in requests)
            plain.Add(await CollectAsync(loaded.Engine, r));
        var speculative = await Task.WhenAll(requests.Select((r, i) => CollectAsync(loaded.Engine, r with { Speculative = ByDraftModel(2 + i % 4) })));
        for (var i = 0; i < requests.Count; i++)
        {
            Assert.Equal(Ids(plain[i]), Ids(speculative[i]));
            for (var t = 0; t < plain[i].Count; t++)
                Assert.Equal(plain[i][t].Logprob!.Value, speculative[i][t].Logprob!.Value, 3);
        }
        var c = loaded.Engine.Counters;
        Assert.True(c.DraftTokens > 0);
        // The draft computes what the target computes, up to the rounding of different batch shapes.
        Assert.True(c.AcceptedDraftTokens >= 0.95 * c.DraftTokens, $"{c.AcceptedDraftTokens} of {c.DraftTokens} drafts accepted");
        Assert.True(c.DraftModelSeconds > 0);
    }

    [Fact]
    public async Task AnotherSyntheticLlamaAsDraftChangesNothingButSpeedAndSeededSamplingKeepsItsTokens()
    {
        var target = SyntheticGguf.Write(new SyntheticModelSpec { Vocab = 260, Seed = 31, Context = 256 });
        var other = SyntheticGguf.Write(new SyntheticModelSpec { Vocab = 260, Seed = 77, Context = 256, Layers = 1 });
        using var loaded = EngineFactory.Load(target, new EngineOptions { KvCacheBlocks = 128, BlockSize = 8 }, draftModel: new DraftModelLoad(other));
        Assert.Equal(1, loaded.Draft!.Config.LayerCount);
        var random = new Random(5);
        var requests = Enumerable.Range(0, 6).Select(i => new EngineRequest
        {
            PromptTokens = RandomPrompt(random, random.Next(4, 30), 5 + i * 9),
            Sampling = i % 2 == 0 ? Greedy with { MaxTokens = 30 } : new SamplingParams { Temperature = 0.8f, Seed = 1000 + i, MaxTokens = 30, IgnoreEos = true },
        }).ToList();
        var plain = new List<int[]>();
        foreach (var r in requests)
            plain.Add(Ids(await CollectAsync(loaded.Engine, r)));
        var speculative = await Task.WhenAll(requests.Select(r => CollectAsync(loaded.Engine, r with { Speculative = ByDraftModel(4) })));
        for (var i = 0; i < requests.Count; i++)
            Assert.Equal(plain[i], Ids(speculative[i]));
        Assert.True(loaded.Engine.Counters.DraftTokens > loaded.Engine.Counters.AcceptedDraftTokens, "no draft was rejected");
    }

    [Fact]
    public void DraftModelSpeculationIsRefusedByAnEngineWithoutADraftModelAndADraftOfAnotherVocabularyIsRefused()
    {
        using var engine = new LlmEngine(new PagedToyModel(), new EngineOptions { KvCacheBlocks = 16, BlockSize = 4 });
        Assert.False(engine.HasDraftModel);
        var e = Assert.Throws<ArgumentException>(() => engine.Validate(new EngineRequest { PromptTokens = [1, 2], Sampling = Greedy, Speculative = ByDraftModel(2) }));
        Assert.Contains("draft model", e.Message);
        Assert.Throws<ArgumentException>(() => new LlmEngine(new PagedToyModel(), new EngineOptions
        {
            KvCacheBlocks = 16, BlockSize = 4, Speculative = ByDraftModel(2),
        }));
        var v = Assert.Throws<ArgumentException>(() => new LlmEngine(new PagedToyModel(vocabSize: 32), new EngineOptions
        {
            KvCacheBlocks = 16, BlockSize = 4, DraftModel = new DraftModelOptions(new PagedToyModel(vocabSize: 33)),
        }));
        Assert.Contains("share the tokenizer", v.Message);
    }

    [Fact]
    public void ADraftModelWithAnotherTokenizerIsRefusedAtLoad()
    {
        var target = SyntheticGguf.Write(new SyntheticModelSpec { Vocab = 260, Seed = 31, Context = 256 });
        var other = SyntheticGguf.Write(new SyntheticModelSpec { Vocab = 300, Seed = 31, Context = 256 });
        var e = Assert.ThrowsAny<Exception>(() => EngineFactory.Load(target, new EngineOptions { KvCacheBlocks = 16, BlockSize = 8 }, draftModel: new DraftModelLoad(other)));
        Assert.Contains("share the tokenizer", e.Message);
        Assert.Throws<FileNotFoundException>(() => EngineFactory.Load(target, new EngineOptions { KvCacheBlocks = 16, BlockSize = 8 }, draftModel: new DraftModelLoad(target + ".missing")));
    }

    /// <summary>A draft executor that records the blocks it was asked to clear and, when asked, is wrong at every n-th position.</summary>
    private sealed class RecordingDraft(PagedToyModel inner, int wrongEvery) : IModelExecutor
    {
        public int VocabSize => inner.VocabSize;
        public int MaxContextLength => inner.MaxContextLength;
        /// <summary>Blocks written since they were last cleared.</summary>
        public HashSet<int> Dirty { get; } = new();
        public int Used { get; private set; }

        public long KvBytesPerBlock(int blockSize) => inner.KvBytesPerBlock(blockSize);

        public void AllocateKvCache(int blockCount, int blockSize) => inner.AllocateKvCache(blockCount, blockSize);

        public void Execute(StepBatch batch, Span<float> logits)
        {
            for (var s = 0; s < batch.SequenceCount; s++)
                foreach (var b in batch.BlockTable(s))
                    if (Dirty.Add(b))
                        Used++;
            inner.Execute(batch, logits);
            if (wrongEvery == 0)
                return;
            for (var s = 0; s < batch.SequenceCount; s++)
            {
                if (batch.LogitRow(s) < 0 || batch.ContextLength(s) % wrongEvery != 0)
                    continue;
                var row = logits.Slice(batch.LogitRow(s) * VocabSize, VocabSize);
                var best = Sampler.ArgMax(row);
                row[(best + 1) % VocabSize] = row[best] + 1;
            }
        }

        public void ScrubKvBlocks(ReadOnlySpan<int> blocks)
        {
            foreach (var b in blocks)
                Dirty.Remove(b);
            ((IModelExecutor)inner).ScrubKvBlocks(blocks);
        }
    }
}
