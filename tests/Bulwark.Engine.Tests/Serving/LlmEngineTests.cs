using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Serving.Scheduling;
using static Bulwark.Engine.Tests.Serving.EngineHarness;

namespace Bulwark.Engine.Tests.Serving;

public class LlmEngineTests
{
    private static readonly SamplingParams Greedy = new() { Temperature = 0, MaxTokens = 12, IgnoreEos = true };

    private static EngineRequest Prompt(int[] tokens, SamplingParams? p = null, string tenant = "t", int priority = 0) =>
        new() { PromptTokens = tokens, Sampling = p ?? Greedy, Tenant = tenant, Priority = priority };

    private static int[] RandomPrompt(Random random, int length) => Enumerable.Range(0, length).Select(_ => random.Next(32)).ToArray();

    [Theory]
    [InlineData(1, 64, 512, 8)]   // roomy cache
    [InlineData(2, 16, 7, 3)]     // small chunks, few slots
    [InlineData(3, 12, 5, 4)]     // tight cache: preemption by recompute
    [InlineData(4, 9, 3, 2)]
    public async Task BatchedGreedyIdsEqualEachPromptRunAlone(int seed, int blocks, int maxBatchedTokens, int maxSeqs)
    {
        var random = new Random(seed);
        var options = new EngineOptions
        {
            KvCacheBlocks = blocks,
            BlockSize = 4,
            Scheduler = new SchedulerOptions { MaxBatchedTokens = maxBatchedTokens, MaxPrefillChunk = maxBatchedTokens, MaxSequences = maxSeqs },
        };
        var requests = Enumerable.Range(0, 10)
            .Select(_ => Prompt(RandomPrompt(random, random.Next(1, 22)), Greedy with { MaxTokens = random.Next(1, 13) }, priority: random.Next(3)))
            .ToList();
        var alone = await AloneAsync(() => new PagedToyModel(), requests, options);

        // In the tight-cache cases every request is in flight at once: the first step waits until all have
        // arrived (a slow machine would otherwise run them one by one, and then nothing needs preempting).
        var tight = blocks <= 12;
        var model = new PausingModel(new PagedToyModel(), pauseAtStep: tight ? 1 : 0);
        using var engine = new LlmEngine(model, options);
        // Random arrival order and spacing: some requests start while others are mid-generation.
        var order = requests.Select((r, i) => i).OrderBy(_ => random.Next()).ToArray();
        var tasks = new Task<List<TokenEvent>>[requests.Count];
        foreach (var i in order)
        {
            // Enumerating starts synchronously up to the first wait for a token: the request has arrived when this returns.
            var events = engine.GenerateAsync(requests[i]).GetAsyncEnumerator();
            tasks[i] = DrainAsync(events, events.MoveNextAsync());
            if (random.Next(3) == 0 && !tight)
                await tasks[i];
        }
        model.Resume();
        var results = await Task.WhenAll(tasks);
        for (var i = 0; i < requests.Count; i++)
            Assert.Equal(alone[i], Ids(results[i]));
        Assert.Equal(0, engine.Counters.Running);
        await WaitForIdle(engine);
        Assert.Equal(0, engine.Counters.KvBlocksUsed);
        if (tight)
            Assert.True(engine.Counters.Preemptions > 0, "the tight cache should have forced preemptions");
    }

    [Fact]
    public async Task ASharedSystemPromptIsComputedOnceAndOutputsDoNotChange()
    {
        var system = Enumerable.Range(0, 16).Select(i => (i * 7) % 32).ToArray();
        var requests = Enumerable.Range(0, 4).Select(i => Prompt([.. system, i, i + 1])).ToList();
        var options = new EngineOptions { KvCacheBlocks = 64, BlockSize = 4 };
        var alone = await AloneAsync(() => new PagedToyModel(), requests, options);

        var model = new PagedToyModel();
        using var engine = new LlmEngine(model, options);
        var first = await CollectAsync(engine, requests[0]);
        var computedFirst = model.ForwardTokens;
        var rest = new List<List<TokenEvent>>();
        foreach (var r in requests.Skip(1))
            rest.Add(await CollectAsync(engine, r));

        Assert.Equal(alone[0], Ids(first));
        for (var i = 1; i < 4; i++)
            Assert.Equal(alone[i], Ids(rest[i - 1]));
        // Each later request computes only its 2 own prompt tokens plus its decode steps.
        Assert.Equal(computedFirst * 4 - 3 * 16, model.ForwardTokens);
        Assert.Equal(3 * 16, engine.Counters.PrefixCacheHitTokens);
        Assert.All(rest, events => Assert.Equal(16, events[0].CachedPromptTokens));
    }

    [Fact]
    public async Task TenantBNeverHitsTenantAsBlocks()
    {
        var prompt = Enumerable.Range(0, 17).ToArray();
        var model = new PagedToyModel();
        using var engine = new LlmEngine(model, new EngineOptions { KvCacheBlocks = 64, BlockSize = 4 });
        var a = await CollectAsync(engine, Prompt(prompt, tenant: "A"));
        var b = await CollectAsync(engine, Prompt(prompt, tenant: "B"));
        var again = await CollectAsync(engine, Prompt(prompt, tenant: "B", p: Greedy with { MaxTokens = 2 }));
        Assert.Equal(0, b[0].CachedPromptTokens);
        Assert.Equal(16, again[0].CachedPromptTokens);
        Assert.Equal(Ids(a), Ids(b));
        Assert.Equal(16, engine.Counters.PrefixCacheHitTokens);
    }

    [Fact]
    public async Task ACacheSaltIsolatesRequestsOfTheSameTenant()
    {
        var prompt = Enumerable.Range(0, 9).ToArray();
        using var engine = new LlmEngine(new PagedToyModel(), new EngineOptions { KvCacheBlocks = 64, BlockSize = 4 });
        await CollectAsync(engine, Prompt(prompt) with { CacheSalt = "one" });
        var other = await CollectAsync(engine, Prompt(prompt) with { CacheSalt = "two" });
        var same = await CollectAsync(engine, Prompt(prompt) with { CacheSalt = "one" });
        Assert.Equal(0, other[0].CachedPromptTokens);
        Assert.Equal(8, same[0].CachedPromptTokens);
    }

    [Fact]
    public async Task NChoicesShareThePromptBlocksAndEachMatchesItsSeededRunAlone()
    {
        var prompt = Enumerable.Range(3, 10).ToArray(); // 10 tokens: the last block is partial and shared
        var sampling = new SamplingParams { Temperature = 1.5f, Seed = 11, MaxTokens = 8, IgnoreEos = true };
        using var engine = new LlmEngine(new PagedToyModel(), new EngineOptions { KvCacheBlocks = 64, BlockSize = 4 });
        var events = await CollectAsync(engine, Prompt(prompt, sampling with { N = 3 }));
        var choices = Enumerable.Range(0, 3).Select(c => Ids(events, c)).ToArray();
        Assert.All(choices, ids => Assert.Equal(8, ids.Length));
        Assert.Equal(3, events.Count(e => e.FinishReason == FinishReason.Length));

        // Same seed, same n: same output; and choice 0 equals an n = 1 request with that seed.
        var again = await CollectAsync(engine, Prompt(prompt, sampling with { N = 3 }));
        Assert.Equal(choices, Enumerable.Range(0, 3).Select(c => Ids(again, c)).ToArray());
        Assert.Equal(choices[0], Ids(await CollectAsync(engine, Prompt(prompt, sampling))));
        Assert.False(choices[0].SequenceEqual(choices[1]) && choices[0].SequenceEqual(choices[2]), "choices draw from different streams");
        await WaitForIdle(engine);
        Assert.Equal(0, engine.Counters.KvBlocksUsed);
    }

    [Fact]
    public async Task CancellingFreesEverythingAtOnce()
    {
        using var engine = new LlmEngine(new PagedToyModel(maxContext: 4096), new EngineOptions { KvCacheBlocks = 1024, BlockSize = 4 });
        using var cts = new CancellationTokenSource();
        var seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in engine.GenerateAsync(Prompt([1, 2, 3], Greedy with { MaxTokens = 3000, N = 2 }), cts.Token))
                if (++seen == 5)
                    cts.Cancel();
        });
        await WaitForIdle(engine);
        Assert.Equal(0, engine.Counters.KvBlocksUsed);
        Assert.Equal(0, engine.Counters.Running);
        Assert.True(engine.Counters.GeneratedTokens < 3000);
    }

    [Fact]
    public async Task StopTokensEndAChoiceAndMaxTokensReportsLength()
    {
        using var engine = new LlmEngine(new PagedToyModel(), new EngineOptions { KvCacheBlocks = 64, BlockSize = 4, EosTokenIds = [] });
        var free = Ids(await CollectAsync(engine, Prompt([5, 6, 7], Greedy with { MaxTokens = 6 })));
        var stopAt = free[2];
        var stopped = await CollectAsync(engine, Prompt([5, 6, 7], Greedy with { MaxTokens = 6, StopTokenIds = [stopAt] }));
        var firstStop = Array.IndexOf(free, stopAt);
        Assert.Equal(free[..(firstStop + 1)], Ids(stopped));
        Assert.Equal(FinishReason.Stop, stopped[^1].FinishReason);

        using var eosEngine = new LlmEngine(new PagedToyModel(), new EngineOptions { KvCacheBlocks = 64, BlockSize = 4, EosTokenIds = [stopAt] });
        Assert.Equal(free[..(firstStop + 1)], Ids(await CollectAsync(eosEngine, Prompt([5, 6, 7], Greedy with { MaxTokens = 6, IgnoreEos = false }))));
        var ignored = await CollectAsync(eosEngine, Prompt([5, 6, 7], Greedy with { MaxTokens = 6, IgnoreEos = true }));
        Assert.Equal(free, Ids(ignored));
        Assert.Equal(FinishReason.Length, ignored[^1].FinishReason);
    }

    [Fact]
    public async Task StopStringsAcrossTokensEndGenerationAndAreNotEmitted()
    {
        using var engine = new LlmEngine(new PagedToyModel(), new EngineOptions { KvCacheBlocks = 64, BlockSize = 4 });
        var free = await CollectAsync(engine, Prompt([1, 2], Greedy with { MaxTokens = 8 }) with { Detokenizer = () => new LetterDetokenizer() });
        var text = string.Concat(free.Select(e => e.Text));
        Assert.Equal(8 * 2, text.Length);
        var stop = text.Substring(5, 4); // spans the 3rd and 4th..5th tokens' text
        var stopped = await CollectAsync(engine, Prompt([1, 2], Greedy with { MaxTokens = 8, StopStrings = [stop] }) with { Detokenizer = () => new LetterDetokenizer() });
        var cut = text.IndexOf(stop, StringComparison.Ordinal);
        Assert.Equal(text[..cut], string.Concat(stopped.Select(e => e.Text)));
        Assert.Equal(FinishReason.Stop, stopped[^1].FinishReason);
    }

    [Theory]
    [InlineData(252, 4, true)]
    [InlineData(252, 5, false)]
    public async Task PromptPlusMaxTokensIsCheckedAgainstTheContextLength(int promptLength, int maxTokens, bool valid)
    {
        using var engine = new LlmEngine(new PagedToyModel(maxContext: 256), new EngineOptions { KvCacheBlocks = 1024, BlockSize = 4 });
        var request = Prompt(new int[promptLength], Greedy with { MaxTokens = maxTokens });
        if (valid)
            Assert.Equal(maxTokens, (await CollectAsync(engine, request)).Count);
        else
            Assert.Contains("context length 256", Assert.Throws<ArgumentOutOfRangeException>(() => engine.Validate(request)).Message);
    }

    [Theory]
    [InlineData(8, true)]
    [InlineData(9, false)]
    public void ARequestLargerThanTheWholeCacheIsRejectedUpFront(int totalTokens, bool valid)
    {
        using var engine = new LlmEngine(new PagedToyModel(), new EngineOptions { KvCacheBlocks = 2, BlockSize = 4 });
        var request = Prompt(new int[totalTokens - 2], Greedy with { MaxTokens = 2 });
        if (valid)
            engine.Validate(request);
        else
            Assert.Contains("KV blocks", Assert.Throws<ArgumentOutOfRangeException>(() => engine.Validate(request)).Message);
    }

    private static async Task<List<TokenEvent>> DrainAsync(IAsyncEnumerator<TokenEvent> events, ValueTask<bool> first)
    {
        var collected = new List<TokenEvent>();
        await using (events)
            for (var more = await first; more; more = await events.MoveNextAsync())
                collected.Add(events.Current);
        return collected;
    }

    private static async Task WaitForIdle(LlmEngine engine)
    {
        // The loop publishes counters right after finishing; the stream completes first. Polling, not timing.
        for (var i = 0; i < 1000 && (engine.Counters.KvBlocksUsed != 0 || engine.Counters.Running != 0); i++)
            await Task.Delay(5);
    }
}
