using Bulwark.Engine.KvCache;
using Bulwark.Engine.Serving.Scheduling;
using Bulwark.Engine.Serving.Speculation;
using CsCheck;

using static Bulwark.Engine.Tests.Serving.SchedulerSteps;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>
/// Tail latency as the scheduler decides it, counted in steps and tokens (no clocks): a decoding sequence gets a
/// token every step and waits for at most (decoders + the prefill cap) tokens computed per step, whatever else is
/// queued (prompts, preempted recomputations, drafts); prefill goes in urgency order, so no later, equal-or-lower
/// request gets its first token before an earlier one that fits; the head of the queue progresses every step.
/// </summary>
public class SchedulerLatencyTests
{
    private const int BlockSize = 4;

    private static Scheduler Create(int budget = 64, int chunk = 32, int cap = 8, int blocks = 256, int seqs = 16) =>
        new(new SchedulerOptions { MaxBatchedTokens = budget, MaxPrefillChunk = chunk, MaxPrefillTokensWhileDecoding = cap, MaxSequences = seqs },
            new BlockAllocator(blocks, BlockSize, prefixCaching: false));

    private static Sequence Prompt(long id, int length, int priority = 0, int maxTokens = 16) =>
        new(id, Enumerable.Range(0, length).Select(i => (int)(id * 31 + i) % 97).ToArray(), maxTokens, priority, arrival: id, BlockHash.Root("t"));

    private static Sequence Decoding(Scheduler scheduler, long id, int priority = 0, SpeculativeConfig? speculation = null)
    {
        var seq = new Sequence(id, [1, 2, 3], 64, priority, arrival: id, BlockHash.Root("t")) { Speculation = speculation };
        scheduler.Add(seq);
        while (seq.OutputCount == 0)
            Step(scheduler);
        return seq;
    }

    private static void Draft(Sequence seq, int count)
    {
        seq.DraftBuffer(count).Fill(5);
        seq.SetDraftCount(count);
    }

    [Fact]
    public void APrefillNeverTakesTheBudgetOfADecodeBehindIt()
    {
        // The budget (8) holds one decode and 7 prompt tokens. The prompt is more urgent than the decoding
        // stream; before, it took all 8 and the stream waited for the whole prompt.
        var scheduler = Create(budget: 8, chunk: 8, cap: 8);
        var stream = Decoding(scheduler, 1, priority: 5);
        var urgent = Prompt(2, 40, priority: 0);
        scheduler.Add(urgent);
        for (var i = 0; i < 5; i++)
        {
            var step = Step(scheduler);
            Assert.Equal(1, CountOf(step, stream));
            Assert.Equal(7, CountOf(step, urgent));
        }
    }

    [Theory]
    [InlineData(5, 5)] // the cap below the drafts: cut to the cap
    [InlineData(6, 6)] // at
    [InlineData(7, 6)] // above: every draft
    public void DraftsStayWithinThePrefillCap(int cap, int expectedDrafts)
    {
        var scheduler = Create(cap: cap);
        var seq = Decoding(scheduler, 1, speculation: new SpeculativeConfig());
        Draft(seq, 6);
        var step = scheduler.Schedule();
        Assert.Equal(1 + expectedDrafts, CountOf(step, seq));
        Assert.Equal(expectedDrafts, seq.DraftCount);
    }

    [Theory]
    [InlineData(10, 8, 0)] // the prompt takes the whole cap: no drafts this step
    [InlineData(3, 3, 5)]  // the drafts get what the prompt leaves
    public void APromptGoesBeforeDraftsAndTogetherTheyStayWithinTheCap(int promptLength, int expectedPrefill, int expectedDrafts)
    {
        var scheduler = Create(cap: 8);
        var seq = Decoding(scheduler, 1, speculation: new SpeculativeConfig());
        var newcomer = Prompt(2, promptLength);
        scheduler.Add(newcomer);
        Draft(seq, 6);
        var step = scheduler.Schedule();
        Assert.Equal(expectedPrefill, CountOf(step, newcomer));
        Assert.Equal(1 + expectedDrafts, CountOf(step, seq));
        Assert.True(step.TokenCount <= 1 + 8);
    }

    [Fact]
    public void APreemptedSequenceRecomputesWithinTheCap()
    {
        var scheduler = Create(cap: 8);
        var stream = Decoding(scheduler, 1);
        var victim = Decoding(scheduler, 2);
        for (var i = 0; i < 20; i++)
            Step(scheduler);
        scheduler.Preempt(victim); // its prompt and every generated token to recompute
        var total = victim.Count;
        Assert.True(total > 20);
        var recomputed = 0;
        while (victim.ComputedCount < total)
        {
            var step = Step(scheduler);
            Assert.Equal(1, CountOf(step, stream));
            Assert.InRange(CountOf(step, victim), 1, 8);
            recomputed += CountOf(step, victim);
        }
        Assert.Equal(total, recomputed); // all of them: the last one yields its next token
    }

    [Fact]
    public void AMoreUrgentArrivalTakesThePrefillCapFromALessUrgentPromptAlreadyRunning()
    {
        var scheduler = Create(cap: 8);
        var stream = Decoding(scheduler, 1);
        var low = Prompt(2, 40, priority: 5);
        scheduler.Add(low);
        Assert.Equal(8, CountOf(Step(scheduler), low));
        var high = Prompt(3, 12, priority: 1);
        scheduler.Add(high);
        var step = Step(scheduler);
        Assert.Equal(1, CountOf(step, stream));
        Assert.Equal(8, CountOf(step, high)); // before: 0, until low's 32 other prompt tokens were done
        Assert.Equal(0, CountOf(step, low));
        step = Step(scheduler);
        Assert.Equal(4, CountOf(step, high)); // its prompt's end: its first token
        Assert.Equal(4, CountOf(step, low));
        Assert.Equal(1, high.OutputCount);
    }

    [Fact]
    public void ALaterRequestDoesNotGetItsFirstTokenBeforeAnEarlierOne()
    {
        // Nobody decodes, so prompts take the budget (16) in chunks of 8: the earlier, long prompt gets 8 a step.
        // The later, short one would fit in the rest of the budget; it starts with the earlier one's last chunk.
        var scheduler = Create(budget: 16, chunk: 8);
        var early = Prompt(1, 20);
        var late = Prompt(2, 3);
        scheduler.Add(early);
        scheduler.Add(late);
        var step = Step(scheduler);
        Assert.Equal(8, CountOf(step, early));
        Assert.Equal(0, CountOf(step, late)); // before: 3, and its first token two steps before the earlier one's
        Step(scheduler);
        Assert.Equal(0, late.OutputCount);
        step = Step(scheduler);
        Assert.Equal(4, CountOf(step, early));
        Assert.Equal(3, CountOf(step, late));
        Assert.Equal(1, early.OutputCount);
        Assert.Equal(1, late.OutputCount);
    }

    [Fact]
    public void ARunningLaterPromptStopsShortOfItsLastTokenWhileAnEarlierOneIsUnfinished()
    {
        // Both admitted in the first step. Then a sequence that arrived before both is queued again (as a
        // preempted one is): from then on the running later prompt prefills up to, not including, its last token.
        var scheduler = Create(budget: 16, chunk: 8, cap: 16);
        var early = Prompt(1, 6);
        var late = Prompt(2, 12);
        scheduler.Add(early);
        scheduler.Add(late);
        var step = Step(scheduler);
        Assert.Equal(6, CountOf(step, early));
        Assert.Equal(8, CountOf(step, late));
        var longer = Prompt(0, 30); // its arrival (0) orders it before both
        scheduler.Add(longer);
        step = Step(scheduler);
        Assert.Equal(1, CountOf(step, early)); // decoding
        Assert.Equal(8, CountOf(step, longer));
        Assert.Equal(3, CountOf(step, late)); // 4 left: 3 now, the last with the longer one's
        Assert.Equal(0, late.OutputCount);
        step = Step(scheduler);
        Assert.Equal(0, CountOf(step, late));
        Assert.Equal(0, late.OutputCount);
    }

    [Fact]
    public void AHigherPriorityLaterRequestMayGoFirst()
    {
        var scheduler = Create(budget: 16, chunk: 8);
        var early = Prompt(1, 20, priority: 3);
        var urgent = Prompt(2, 3, priority: 0);
        scheduler.Add(early);
        scheduler.Add(urgent);
        var step = Step(scheduler);
        Assert.Equal(3, CountOf(step, urgent));
        Assert.Equal(8, CountOf(step, early));
        Assert.Equal(1, urgent.OutputCount);
    }

    [Fact]
    public void AnEarlierRequestThatDoesNotFitHoldsBackLaterAdmissionsButRunningPromptsGoOn()
    {
        // 10 blocks of 4: the running prompt holds 4 growing to 8; the big arrival needs 4 for its first chunk, 2 are left.
        var scheduler = Create(budget: 64, chunk: 16, cap: 64, blocks: 10);
        var running = Prompt(1, 40);
        scheduler.Add(running);
        Assert.Equal(16, CountOf(Step(scheduler), running));
        var big = Prompt(2, 36);
        var small = Prompt(3, 2);
        scheduler.Add(big);
        scheduler.Add(small);
        var step = Step(scheduler);
        Assert.Equal(16, CountOf(step, running)); // it goes on: it holds blocks the big one may need
        Assert.Equal(0, CountOf(step, big));
        Assert.Equal(0, CountOf(step, small)); // it would fit, but an earlier request waits
        Assert.Equal(new[] { big, small }, scheduler.Waiting);
    }

    private enum Op { Arrive, Step }

    [Fact]
    public void RandomArrivalsKeepTheBoundTheOrderAndProgress()
    {
        var gen = Gen.Select(Gen.Enum<Op>(), Gen.Int[1, 60], Gen.Int[0, 2], Gen.Int[0, 3]).Array[1, 80];
        // Budgets above the most sequences that can decode at once (80 arrivals), as the bound needs.
        gen.Sample(ops => Run(ops, cap: 8, budget: 256, chunk: 16), iter: 200);
        gen.Sample(ops => Run(ops, cap: 3, budget: 100, chunk: 5), iter: 100);
    }

    /// <summary>
    /// Random arrivals (prompt length, priority, drafts) between steps, with blocks and seats for everyone, checking
    /// every step: each decoding sequence gets exactly one token plus its drafts; all tokens beyond one per decode
    /// stay within the cap; the most urgent sequence with prompt left gets tokens. At the end, first tokens come in
    /// order: an earlier request with equal or higher priority never after a later one.
    /// </summary>
    private static void Run((Op Kind, int Length, int Priority, int Drafts)[] ops, int cap, int budget, int chunk)
    {
        const int maxTokens = 6;
        var scheduler = Create(budget: budget, chunk: chunk, cap: cap, blocks: 4096, seqs: 256);
        var all = new List<Sequence>();
        var firstTokenStep = new Dictionary<Sequence, int>();
        var steps = 0;
        foreach (var (kind, length, priority, drafts) in ops)
        {
            if (kind == Op.Arrive)
            {
                var seq = new Sequence(all.Count, Enumerable.Range(0, length).ToArray(), maxTokens, priority, arrival: all.Count, BlockHash.Root("t"))
                {
                    Speculation = drafts > 0 ? new SpeculativeConfig() : null,
                };
                all.Add(seq);
                scheduler.Add(seq);
            }
            else if (scheduler.HasWork)
            {
                CheckedStep();
            }
        }
        for (var drain = 0; scheduler.HasWork; drain++)
        {
            Assert.True(drain < 10_000, "the queue never drained");
            CheckedStep();
        }

        void CheckedStep()
        {
            var decoding = scheduler.Running.Where(s => s.OutputCount > 0 && s.Count - s.ComputedCount == 1).ToList();
            foreach (var s in decoding)
                if (s.Speculation is not null) Draft(s, 1 + (int)(s.Id % 3));
            var head = scheduler.Running.Where(s => !decoding.Contains(s)).Concat(scheduler.Waiting)
                .OrderBy(s => s.Priority).ThenBy(s => s.Arrival).FirstOrDefault();
            var step = scheduler.Schedule();
            steps++;
            foreach (var s in decoding)
                Assert.Equal(1 + s.DraftCount, CountOf(step, s));
            if (decoding.Count > 0)
                Assert.True(step.TokenCount - decoding.Count <= cap, $"step {steps}: {step.TokenCount} tokens with {decoding.Count} decoding, cap {cap}");
            if (head is not null)
                Assert.True(CountOf(step, head) > 0, $"step {steps}: the head of the queue (seq {head.Id}) made no progress");
            scheduler.Complete(step);
            foreach (var s in step.Sequences.ToArray())
            {
                if (s.ComputedCount != s.Count)
                    continue;
                if (s.DraftCount > 0)
                {
                    // Every draft rejected: the sequence appends only the token of its own row.
                    s.Append(2);
                    scheduler.SettleDrafts(s, 0);
                }
                else
                {
                    s.Append(1);
                }
                firstTokenStep.TryAdd(s, steps);
                if (s.OutputCount == maxTokens)
                    scheduler.Remove(s);
            }
        }
        Assert.False(scheduler.HasWork);
        foreach (var a in all)
        foreach (var b in all)
            if (a.Arrival < b.Arrival && a.Priority <= b.Priority)
                Assert.True(firstTokenStep[a] <= firstTokenStep[b],
                    $"seq {b.Id} (priority {b.Priority}) got its first token at step {firstTokenStep[b]}, before the earlier seq {a.Id} (priority {a.Priority}) at {firstTokenStep[a]}");
    }
}
