using Bulwark.Engine.KvCache;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Constraints;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Serving.Scheduling;
using Bulwark.Engine.Serving.Speculation;
using Bulwark.Engine.Synthesis;
using static Bulwark.Engine.Tests.Serving.EngineHarness;

namespace Bulwark.Engine.Tests.Serving.Speculation;

/// <summary>
/// Speculation changes how many tokens a step emits, never which: every event of a request (ids, text,
/// logprobs, finish reason) is the same with prompt-lookup drafts as without, in batches that mix
/// speculative and plain sequences, under preemption, stop conditions, penalties, seeds and constraints.
/// </summary>
public class SpeculativeDecodingTests
{
    private static readonly SamplingParams Greedy = new() { Temperature = 0, MaxTokens = 12, IgnoreEos = true };

    private static SpeculativeConfig Ngram(int k, int max = 3, int min = 1) =>
        new() { NumSpeculativeTokens = k, PromptLookupMax = max, PromptLookupMin = min };

    [Theory]
    [InlineData(1, 64, 512, 8)]   // roomy cache
    [InlineData(2, 24, 10, 3)]    // small budget: drafts cut to what is left
    [InlineData(3, 12, 9, 4)]     // tight cache: preemption by recompute, drafts get only spare blocks
    [InlineData(4, 40, 3, 2)]
    public async Task GreedyIdsWithSpeculationEqualPlainDecodingInMixedBatches(int seed, int blocks, int maxBatchedTokens, int maxSeqs)
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
        // Two of every three speculate, with different k and n-gram ranges; the rest decode one token at a time.
        var mixed = plain.Select((r, i) => i % 3 == 2 ? r : r with { Speculative = Ngram(1 + i % 5, 1 + i % 3) }).ToList();

        var model = new PausingModel(new PagedToyModel(), pauseAtStep: 1);
        using var engine = new LlmEngine(model, options);
        var tasks = mixed.Select(r => CollectAsync(engine, r)).ToList();
        model.Resume();
        var results = await Task.WhenAll(tasks);
        for (var i = 0; i < mixed.Count; i++)
            Assert.Equal(expected[i], Ids(results[i]));
        Assert.True(engine.Counters.DraftTokens > engine.Counters.AcceptedDraftTokens, "no draft was rejected: rollback is untested");
        Assert.True(engine.Counters.AcceptedDraftTokens > 0, "no draft was accepted");
        await WaitUntilAsync(() => engine.Counters.KvBlocksUsed == 0 && engine.Counters.Running == 0);
    }

    [Fact]
    public async Task ASyntheticLlamaGivesTheSameGreedyTokensAndLogprobsWithSpeculation()
    {
        using var loaded = EngineFactory.Load(SyntheticGguf.Write(new SyntheticModelSpec { Vocab = 260, Seed = 31, Context = 256 }),
            new EngineOptions { KvCacheBlocks = 128, BlockSize = 8 });
        var random = new Random(8);
        var requests = Enumerable.Range(0, 10).Select(i => new EngineRequest
        {
            PromptTokens = RandomPrompt(random, random.Next(4, 40), 3 + i * 6),
            Sampling = Greedy with { MaxTokens = 40, TopLogprobs = 3 },
        }).ToList();
        var plain = new List<List<TokenEvent>>();
        foreach (var r in requests)
            plain.Add(await CollectAsync(loaded.Engine, r));
        var speculative = await Task.WhenAll(requests.Select((r, i) => CollectAsync(loaded.Engine, r with { Speculative = Ngram(2 + i % 4) })));
        for (var i = 0; i < requests.Count; i++)
        {
            Assert.Equal(Ids(plain[i]), Ids(speculative[i]));
            for (var t = 0; t < plain[i].Count; t++)
            {
                // A verification computes several positions in one pass: the same arithmetic up to float rounding of the batch.
                Assert.Equal(plain[i][t].Logprob!.Value, speculative[i][t].Logprob!.Value, 3);
                Assert.Equal(plain[i][t].TopLogprobs!.Select(x => x.TokenId), speculative[i][t].TopLogprobs!.Select(x => x.TokenId));
            }
        }
        Assert.True(loaded.Engine.Counters.AcceptedDraftTokens > 0, "no draft was accepted");
        Assert.True(loaded.Engine.Counters.DraftTokens > loaded.Engine.Counters.AcceptedDraftTokens, "no draft was rejected");
    }

    [Fact]
    public async Task DraftsEqualToTheGreedyContinuationAreAllAcceptedInFewerForwardPasses()
    {
        // The model writes x + 1 after x; the prompt counts 0..31 and starts again, so lookup proposes exactly that.
        int[] prompt = [.. Enumerable.Range(0, 32), 0, 1, 2];
        var request = new EngineRequest { PromptTokens = prompt, Sampling = Greedy with { MaxTokens = 41 } };
        var plainModel = new SuccessorModel();
        using (var plainEngine = new LlmEngine(plainModel, new EngineOptions { KvCacheBlocks = 64, BlockSize = 4 }))
            Assert.Equal(Enumerable.Range(3, 41).Select(x => x % 32), Ids(await CollectAsync(plainEngine, request)));

        var model = new SuccessorModel();
        using var engine = new LlmEngine(model, new EngineOptions { KvCacheBlocks = 64, BlockSize = 4 });
        var events = await CollectAsync(engine, request with { Speculative = Ngram(4) });
        Assert.Equal(Enumerable.Range(3, 41).Select(x => x % 32), Ids(events));
        Assert.Equal(FinishReason.Length, events[^1].FinishReason);
        Assert.Equal(engine.Counters.DraftTokens, engine.Counters.AcceptedDraftTokens);
        // One pass for the prompt and its first token, then 4 drafts + 1 bonus per pass: 40 tokens in 8 passes.
        Assert.Equal(40, engine.Counters.DraftTokens + engine.Counters.Verifications);
        Assert.Equal(1 + 8, model.ForwardPasses);
        Assert.Equal(plainModel.ForwardPasses - 32, model.ForwardPasses);
    }

    [Fact]
    public async Task DraftsTheModelDisagreesWithAreAllRejectedAndTheOutputIsUnchanged()
    {
        // Every token x in the prompt is followed by x + 7; the model writes x + 1: each draft is wrong.
        var prompt = Enumerable.Range(0, 32).SelectMany(x => new[] { x, (x + 7) % 32 }).ToArray();
        var request = new EngineRequest { PromptTokens = prompt, Sampling = Greedy with { MaxTokens = 30 }, Speculative = Ngram(3) };
        var model = new SuccessorModel();
        using var engine = new LlmEngine(model, new EngineOptions { KvCacheBlocks = 64, BlockSize = 4 });
        Assert.Equal(Enumerable.Range(7, 30).Select(x => x % 32), Ids(await CollectAsync(engine, request)));
        Assert.Equal(0, engine.Counters.AcceptedDraftTokens);
        // Outputs 1..28 verify drafts (3 each until max_tokens leaves room for fewer: 2, then 1); output 29 has no room.
        Assert.Equal(28, engine.Counters.Verifications);
        Assert.Equal(26 * 3 + 2 + 1, engine.Counters.DraftTokens);
        Assert.Equal(30, model.ForwardPasses);
        await WaitUntilAsync(() => engine.Counters.KvBlocksUsed == 0);
    }

    [Fact]
    public async Task StopTokensStopStringsAndMaxTokensEndSpeculativeOutputWhereTheyEndPlainOutput()
    {
        int[] prompt = [.. Enumerable.Range(0, 32), 0, 1, 2];
        var model = new SuccessorModel();
        using var engine = new LlmEngine(model, new EngineOptions { KvCacheBlocks = 64, BlockSize = 4, EosTokenIds = [9] });
        var cases = new List<EngineRequest>
        {
            new() { PromptTokens = prompt, Sampling = Greedy with { MaxTokens = 30, IgnoreEos = false } },          // EOS 9 mid-draft
            new() { PromptTokens = prompt, Sampling = Greedy with { MaxTokens = 30, StopTokenIds = [12] } },        // stop id
            new() { PromptTokens = prompt, Sampling = Greedy with { MaxTokens = 6 } },                             // max_tokens inside a draft run
            new() { PromptTokens = prompt, Sampling = Greedy with { MaxTokens = 2 } },                             // too few left to draft
            new() { PromptTokens = prompt, Sampling = Greedy with { MaxTokens = 30, StopStrings = ["AiA"] }, Detokenizer = () => new LetterDetokenizer() },
            new() { PromptTokens = prompt, Sampling = Greedy with { MaxTokens = 30, StopStrings = ["nAo"] }, Detokenizer = () => new LetterDetokenizer() },
        };
        foreach (var request in cases)
        {
            var plain = await CollectAsync(engine, request);
            var speculative = await CollectAsync(engine, request with { Speculative = Ngram(5) });
            Assert.Equal(Describe(plain), Describe(speculative));
        }
        Assert.True(engine.Counters.AcceptedDraftTokens > 20);
    }

    [Fact]
    public async Task SeededSamplingWithPenaltiesGivesTheSameTokensWithSpeculation()
    {
        var random = new Random(12);
        using var engine = new LlmEngine(new PagedToyModel(vocabSize: 12), new EngineOptions { KvCacheBlocks = 256, BlockSize = 4 });
        var samplings = new[]
        {
            new SamplingParams { Temperature = 0.7f, MaxTokens = 30, IgnoreEos = true },
            new SamplingParams { Temperature = 1f, TopK = 5, TopP = 0.9f, MaxTokens = 30, IgnoreEos = true, N = 3 },
            new SamplingParams { Temperature = 0f, FrequencyPenalty = 0.6f, PresencePenalty = 0.3f, MaxTokens = 30, IgnoreEos = true },
            new SamplingParams { Temperature = 0.9f, RepetitionPenalty = 1.3f, MinP = 0.05f, MaxTokens = 30, IgnoreEos = true, Logprobs = true },
            new SamplingParams { Temperature = 0f, RepetitionPenalty = 1.5f, MaxTokens = 30, IgnoreEos = true, LogitBias = new Dictionary<int, float> { [3] = 2f } },
        };
        long drafted = 0;
        for (var trial = 0; trial < 20; trial++)
        {
            var p = samplings[trial % samplings.Length] with { Seed = trial };
            var request = new EngineRequest { PromptTokens = RandomPrompt(random, 12, 4), Sampling = p };
            var plain = await CollectAsync(engine, request);
            var speculative = await CollectAsync(engine, request with { Speculative = Ngram(3) });
            for (var c = 0; c < p.N; c++)
                Assert.Equal(Ids(plain, c), Ids(speculative, c));
            Assert.Equal(plain.Select(e => e.Logprob), speculative.Select(e => e.Logprob));
            Assert.True(engine.Counters.DraftTokens > drafted, $"trial {trial} drafted nothing");
            drafted = engine.Counters.DraftTokens;
        }
    }

    [Fact]
    public async Task ConstrainedOutputIsTheSameWithSpeculationAndDraftsTheGrammarRefusesAreNeverVerified()
    {
        using var loaded = EngineFactory.Load(SyntheticGguf.Write(new SyntheticModelSpec { Vocab = 1024, Seed = 7, Context = 512 }),
            new EngineOptions { KvCacheBlocks = 256, BlockSize = 16 });
        var vocabulary = TokenVocabulary.From(loaded.Tokenizer, loaded.Engine.VocabSize);
        var grammars = new[]
        {
            GrammarCompiler.Regex("(ab|ba|[0-9]){1,40}!"),
            GrammarCompiler.Choice(["alpha beta alpha beta alpha", "gamma gamma gamma"]),
            GrammarCompiler.Regex("[a-c ]{0,60}"),
        };
        var prompt = loaded.Tokenizer.Encode("ab ab ba 12 ab ba! abc abc cab alpha beta gamma gamma", addSpecial: false);
        foreach (var grammar in grammars)
            foreach (var p in new[] { new SamplingParams { Temperature = 0, MaxTokens = 48 }, new SamplingParams { Temperature = 1, Seed = 3, MaxTokens = 48, N = 2 } })
            {
                var request = new EngineRequest { PromptTokens = prompt, Sampling = p, Constraint = new TokenConstraint(grammar, vocabulary) };
                var plain = await CollectAsync(loaded.Engine, request);
                var speculative = await CollectAsync(loaded.Engine, request with { Constraint = new TokenConstraint(grammar, vocabulary), Speculative = Ngram(4) });
                for (var c = 0; c < p.N; c++)
                {
                    Assert.Equal(Ids(plain, c), Ids(speculative, c));
                    Assert.Equal(plain.Last(e => e.Index == c).FinishReason, speculative.Last(e => e.Index == c).FinishReason);
                }
            }
        Assert.True(loaded.Engine.Counters.AcceptedDraftTokens > 0, "no draft was accepted");
    }

    [Fact]
    public void AConstrainedSequenceDraftsOnlyWhatItsGrammarAllows()
    {
        // Byte tokens 'a' 'b' '!' and end of sequence (3).
        var vocabulary = new TokenVocabulary([[(byte)'a'], [(byte)'b'], [(byte)'!'], null]);
        var strict = new TokenConstraint(GrammarCompiler.Regex("(ab)+!"), vocabulary);
        var loose = new TokenConstraint(GrammarCompiler.Regex("(ab|b)+!?"), vocabulary);

        // Prompt "abbb!!", output "ab": lookup of "ab" proposes "bb!!".
        var seq = AfterAb([0, 1, 1, 1, 2, 2], strict);
        Drafter.Propose(seq, maxTokens: 32, maxContext: 64, strict, eosIds: [3]);
        Assert.Equal(0, seq.DraftCount); // (ab)+! refuses 'b' after "ab"
        seq = AfterAb([0, 1, 1, 1, 2, 2], loose);
        Drafter.Propose(seq, maxTokens: 32, maxContext: 64, loose, eosIds: [3]);
        Assert.Equal([1, 1, 2], seq.Drafts.ToArray()); // "bb!" and then no second '!'
        Drafter.Propose(seq, maxTokens: 5, maxContext: 64, loose, eosIds: [3]);
        Assert.Equal([1, 1], seq.Drafts.ToArray()); // 2 output tokens of at most 5: 2 drafts + the token the step emits

        // Prompt "ab<eos>", output "ab": lookup proposes end of sequence, allowed only where the grammar accepts.
        seq = AfterAb([0, 1, 3], strict);
        Drafter.Propose(seq, maxTokens: 32, maxContext: 64, strict, eosIds: [3]);
        Assert.Equal(0, seq.DraftCount);
        seq = AfterAb([0, 1, 3], loose);
        Drafter.Propose(seq, maxTokens: 32, maxContext: 64, loose, eosIds: [3]);
        Assert.Equal([3], seq.Drafts.ToArray()); // nothing after end of sequence
    }

    private static Sequence AfterAb(int[] prompt, TokenConstraint constraint)
    {
        var seq = new Sequence(1, prompt, 32, 0, 0, BlockHash.Root("")) { Speculation = Ngram(4, 2) };
        seq.Append(0);
        seq.Append(1);
        seq.Constraint = constraint.Advance(constraint.Advance(constraint.Start, 0, first: true), 1, first: false);
        seq.ComputedCount = seq.Count - 1;
        return seq;
    }

    [Fact]
    public async Task TheEngineDefaultAppliesUnlessARequestTurnsItOff()
    {
        int[] prompt = [.. Enumerable.Range(0, 32), 0, 1, 2];
        using var engine = new LlmEngine(new SuccessorModel(), new EngineOptions { KvCacheBlocks = 64, BlockSize = 4, Speculative = Ngram(2) });
        await CollectAsync(engine, new EngineRequest { PromptTokens = prompt, Sampling = Greedy });
        var drafted = engine.Counters.DraftTokens;
        Assert.True(drafted > 0);
        await CollectAsync(engine, new EngineRequest { PromptTokens = prompt, Sampling = Greedy, Speculative = SpeculativeConfig.Off });
        Assert.Equal(drafted, engine.Counters.DraftTokens);
    }

    [Theory]
    [InlineData(0, 3, 1, "num_speculative_tokens must be between 1 and 16; got 0")]
    [InlineData(17, 3, 1, "num_speculative_tokens must be between 1 and 16; got 17")]
    [InlineData(4, 9, 1, "prompt_lookup_max must be between 1 and 8; got 9")]
    [InlineData(4, 0, 1, "prompt_lookup_max must be between 1 and 8; got 0")]
    [InlineData(4, 2, 3, "prompt_lookup_min must be between 1 and prompt_lookup_max (2); got 3")]
    [InlineData(4, 2, 0, "prompt_lookup_min must be between 1 and prompt_lookup_max (2); got 0")]
    [InlineData(16, 8, 8, null)]
    [InlineData(1, 1, 1, null)]
    public void SpeculativeSettingsAreCheckedAgainstTheirLimits(int k, int max, int min, string? error)
    {
        using var engine = new LlmEngine(new SuccessorModel(), new EngineOptions { KvCacheBlocks = 8, BlockSize = 4 });
        var request = new EngineRequest { PromptTokens = [1, 2], Sampling = Greedy, Speculative = Ngram(k, max, min) };
        if (error is null)
            engine.Validate(request);
        else
            Assert.Contains(error, Assert.Throws<ArgumentOutOfRangeException>(() => engine.Validate(request)).Message);
    }

    private static List<string> Describe(List<TokenEvent> events) =>
        events.Select(e => $"{e.TokenId}|{e.Text}|{e.FinishReason}|{e.IsStopToken}|{e.StopStringMatched}|{e.CompletionTokens}").ToList();
}
