using Bulwark.Engine.KvCache;
using Bulwark.Engine.Serving.Scheduling;
using static Bulwark.Engine.Tests.Serving.SchedulerSteps;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>While a stream decodes, a step carries at most MaxPrefillTokensWhileDecoding prefill tokens.</summary>
public class SchedulerPrefillCapTests
{
    private static (Scheduler Scheduler, BlockAllocator Blocks) Create(int cap) =>
        CreateWith(new SchedulerOptions { MaxBatchedTokens = 64, MaxSequences = 8, MaxPrefillChunk = 32, MaxPrefillTokensWhileDecoding = cap });

    private static (Scheduler, BlockAllocator) CreateWith(SchedulerOptions options)
    {
        var blocks = new BlockAllocator(capacity: 64, blockSize: 4, prefixCaching: false);
        return (new Scheduler(options, blocks), blocks);
    }

    private static Sequence Prompt(long id, int length) =>
        new(id, Enumerable.Range(0, length).Select(i => i % 7).ToArray(), 16, priority: 0, arrival: id, BlockHash.Root("t"));

    [Fact]
    public void WithoutDecodesAPromptGetsTheFullChunk()
    {
        var (scheduler, _) = Create(cap: 8);
        var seq = Prompt(1, 40);
        scheduler.Add(seq);
        Assert.Equal(32, CountOf(Step(scheduler), seq)); // MaxPrefillChunk, not the cap
    }

    [Theory]
    [InlineData(7, 7)]   // below the cap: the whole prompt
    [InlineData(8, 8)]   // at the cap
    [InlineData(9, 8)]   // above: the cap now, the rest next step
    [InlineData(40, 8)]
    public void WhileAStreamDecodesAPromptGetsAtMostTheCap(int promptLength, int expected)
    {
        var (scheduler, _) = Create(cap: 8);
        var running = Prompt(1, 3);
        scheduler.Add(running);
        Step(scheduler); // its prompt; it decodes from now on
        var newcomer = Prompt(2, promptLength);
        scheduler.Add(newcomer);
        var step = Step(scheduler);
        Assert.Equal(1, CountOf(step, running));
        Assert.Equal(expected, CountOf(step, newcomer));
        if (promptLength > 8)
            Assert.Equal(Math.Min(8, promptLength - 8), CountOf(Step(scheduler), newcomer));
    }

    [Fact]
    public void TheCapIsSharedByEveryPrefillInTheStep()
    {
        var (scheduler, _) = Create(cap: 8);
        var running = Prompt(1, 2);
        scheduler.Add(running);
        Step(scheduler);
        var a = Prompt(2, 5);
        var b = Prompt(3, 5);
        scheduler.Add(a);
        scheduler.Add(b);
        var step = Step(scheduler);
        Assert.Equal(1, CountOf(step, running));
        Assert.Equal(8, CountOf(step, a) + CountOf(step, b));
        Assert.Equal(5, CountOf(step, a));
    }

    [Fact]
    public void APartlyPrefilledRunningSequenceIsCappedToo()
    {
        // A prompt admitted alone takes the full chunk; once another stream decodes, its remaining
        // prefill shares steps only within the cap, and it is never dropped from a step entirely.
        var (scheduler, _) = Create(cap: 4);
        var early = Prompt(1, 2);
        scheduler.Add(early);
        var longPrompt = Prompt(2, 100);
        scheduler.Add(longPrompt);
        var first = Step(scheduler); // nobody decodes yet: early's 2 + 32 of the long prompt
        Assert.Equal(32, CountOf(first, longPrompt));
        var second = Step(scheduler); // early decodes now
        Assert.Equal(1, CountOf(second, early));
        Assert.Equal(4, CountOf(second, longPrompt));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(1_048_576)]
    public void CapsFromOneTo1048576AreAccepted(int cap) =>
        CreateWith(new SchedulerOptions { MaxPrefillTokensWhileDecoding = cap });

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(1_048_577)]
    public void ACapOutsideOneTo1048576IsRefused(int cap)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => CreateWith(new SchedulerOptions { MaxPrefillTokensWhileDecoding = cap }));
        Assert.Contains(cap.ToString(), e.Message);
    }
}
