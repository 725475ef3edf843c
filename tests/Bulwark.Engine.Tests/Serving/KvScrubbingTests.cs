using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Synthesis;
using static Bulwark.Engine.Tests.Serving.EngineHarness;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>
/// What a request leaves in the KV cache after it ends: nothing, once the engine has had an idle moment,
/// except the blocks the prefix cache keeps (until they are evicted or flushed); and a block that changes
/// hands is cleared before its new owner's step. Read from the KV store itself (test access).
/// </summary>
public sealed class KvScrubbingTests
{
    private static readonly SamplingParams Greedy = new() { Temperature = 0, MaxTokens = 6, IgnoreEos = true };

    private static EngineOptions Options(int blocks, bool prefixCaching = true) => new() { KvCacheBlocks = blocks, BlockSize = 4, PrefixCaching = prefixCaching };

    private static int[] Prompt(int seed, int length, int vocab) { var r = new Random(seed); return Enumerable.Range(0, length).Select(_ => r.Next(vocab)).ToArray(); }

    private static async Task IdleAndSweptAsync(LlmEngine engine)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (engine.DirtyFreeBlocks != 0 || engine.Counters.Running != 0 || engine.Counters.Waiting != 0)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the engine did not sweep within 30 s ({engine.DirtyFreeBlocks} blocks left)");
            await Task.Delay(10);
        }
    }

    private static List<int> Cached(LlmEngine engine, int blocks) => Enumerable.Range(0, blocks).Where(engine.Blocks.IsCached).ToList();

    [Fact]
    public async Task AfterARequestEndsOnlyTheCachedPrefixKeepsKvAndAFlushClearsThatToo()
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec());
        using var executor = new PagedLlamaExecutor(model);
        using var engine = new LlmEngine(executor, Options(32));
        var prompt = Prompt(1, 18, model.Config.VocabularySize);
        await CollectAsync(engine, new EngineRequest { PromptTokens = prompt, Sampling = Greedy, Tenant = "A" });
        await IdleAndSweptAsync(engine);

        var cached = Cached(engine, 32);
        Assert.Equal(5, cached.Count); // the 23 computed positions' full blocks (prompt and output; the last token is never computed)
        Assert.All(cached, b => Assert.False(executor.KvStore.IsZero(b)));
        Assert.All(Enumerable.Range(0, 32).Except(cached), b => Assert.True(executor.KvStore.IsZero(b), $"block {b} still holds KV"));
        Assert.Equal(1, engine.Counters.KvBlocksScrubbed); // the last, partial block, swept
        // ...when the engine was idle: timed as such, and nothing was cleared while the request ran.
        Assert.True(engine.Counters.KvScrubSecondsIdle > 0);
        Assert.Equal(0, engine.Counters.KvScrubSecondsBusy);
        Assert.True(engine.Counters.StepSeconds > 0);

        Assert.Equal(5, await engine.FlushPrefixCacheAsync("A"));
        await IdleAndSweptAsync(engine);
        Assert.Empty(Cached(engine, 32));
        Assert.All(Enumerable.Range(0, 32), b => Assert.True(executor.KvStore.IsZero(b), $"block {b} still holds KV after the flush"));
    }

    [Fact]
    public async Task AFlushDropsOneTenantsBlocksAndLeavesTheOthersFindable()
    {
        using var model = SyntheticGguf.Load(new SyntheticModelSpec());
        using var executor = new PagedLlamaExecutor(model);
        using var engine = new LlmEngine(executor, Options(64));
        var prompt = Prompt(2, 17, model.Config.VocabularySize);
        await CollectAsync(engine, new EngineRequest { PromptTokens = prompt, Sampling = Greedy, Tenant = "A" });
        await CollectAsync(engine, new EngineRequest { PromptTokens = prompt, Sampling = Greedy, Tenant = "B" });
        await IdleAndSweptAsync(engine);
        Assert.Equal(10, Cached(engine, 64).Count); // 22 computed positions each: 5 full blocks

        Assert.Equal(5, await engine.FlushPrefixCacheAsync("A"));
        Assert.Equal(0, await engine.FlushPrefixCacheAsync("nobody"));
        await IdleAndSweptAsync(engine);
        var kept = Cached(engine, 64);
        Assert.Equal(5, kept.Count);
        Assert.All(kept, b => Assert.False(executor.KvStore.IsZero(b)));

        // B finds its prefix again; A computes its own anew.
        var hits = engine.Counters.PrefixCacheHitTokens;
        await CollectAsync(engine, new EngineRequest { PromptTokens = prompt, Sampling = Greedy, Tenant = "B" });
        Assert.Equal(hits + 16, engine.Counters.PrefixCacheHitTokens);
        await CollectAsync(engine, new EngineRequest { PromptTokens = prompt, Sampling = Greedy, Tenant = "A" });
        Assert.Equal(hits + 16, engine.Counters.PrefixCacheHitTokens);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ABlockHandedOutAgainIsClearedBeforeItsNewOwnersStepAndNeverRead(bool prefixCaching)
    {
        // Scrubbing writes NaN here, so a slot read before the new owner wrote it would poison its logits:
        // the second request's ids must equal those it gets on a fresh engine. The cache is too small for both
        // requests' blocks, so the second one reuses the first one's (cached ones are evicted then).
        using var model = SyntheticGguf.Load(new SyntheticModelSpec());
        var vocab = model.Config.VocabularySize;
        var first = new EngineRequest { PromptTokens = Prompt(3, 21, vocab), Sampling = Greedy, Tenant = "A" };
        var second = new EngineRequest { PromptTokens = Prompt(4, 23, vocab), Sampling = Greedy with { MaxTokens = 9 }, Tenant = "B" };
        var alone = (await AloneAsync(() => new PagedLlamaExecutor(model), [second], Options(12)))[0];

        using var executor = new PagedLlamaExecutor(model) { ScrubValue = float.NaN };
        using var engine = new LlmEngine(executor, Options(12, prefixCaching));
        await CollectAsync(engine, first);
        var scrubbed = engine.Counters.KvBlocksScrubbed;
        Assert.Equal(alone, Ids(await CollectAsync(engine, second)));
        Assert.True(engine.Counters.KvBlocksScrubbed > scrubbed);
        // Evicted prefix blocks are cleared just before the new owner's step: time the requests paid.
        if (prefixCaching) Assert.True(engine.Counters.KvScrubSecondsBusy > 0);
    }
}
