using Bulwark.Engine.KvCache;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Scheduling;
using Bulwark.Engine.Serving.Speculation;

namespace Bulwark.Engine.Tests.Serving.Speculation;

/// <summary>The scheduler's side of verification: drafts take only spare budget and blocks, and rejected ones leave nothing behind.</summary>
public class DraftRollbackTests
{
    private const int BlockSize = 4;

    private static (Scheduler Scheduler, Sequence Seq) Decoding(int blocks, int budget, int[] prompt)
    {
        var scheduler = new Scheduler(new SchedulerOptions { MaxBatchedTokens = budget, MaxPrefillChunk = budget }, new BlockAllocator(blocks, BlockSize, prefixCaching: true));
        var seq = new Sequence(1, prompt, 64, 0, 0, BlockHash.Root("t")) { Speculation = new SpeculativeConfig() };
        scheduler.Add(seq);
        while (seq.ComputedCount < seq.Count)
            scheduler.Complete(scheduler.Schedule());
        seq.Append(30); // the first output token, sampled from the prompt's last logits
        return (scheduler, seq);
    }

    private static void Draft(Sequence seq, params int[] drafts)
    {
        drafts.CopyTo(seq.DraftBuffer(drafts.Length));
        seq.SetDraftCount(drafts.Length);
    }

    [Fact]
    public void RejectedDraftsReleaseTheirBlocksAndThePrefixCacheNeverHoldsThem()
    {
        var (scheduler, seq) = Decoding(blocks: 16, budget: 64, prompt: [1, 2, 3, 4, 5, 6]);
        Draft(seq, 7, 8, 9, 10, 11, 12);
        var step = scheduler.Schedule();
        Assert.Equal(1 + 6, step.Counts[0]);
        var batch = new StepBatch();
        batch.Load(step);
        Assert.Equal([30, 7, 8, 9, 10, 11, 12], batch.TokenIds.ToArray());
        Assert.Equal(Enumerable.Range(6, 7), batch.Positions.ToArray());
        Assert.Equal(7, batch.LogitRowsOf(0));
        Assert.Equal(7, batch.LogitRowCount);
        Assert.Equal(4, seq.Blocks.Count); // positions up to 12 reserved
        scheduler.Complete(step);
        Assert.Equal(7, seq.ComputedCount); // the drafts' KV does not count yet

        // The target agreed with 7 and 8, then wrote 20 instead of 9.
        seq.Append(7);
        seq.Append(8);
        seq.Append(20);
        scheduler.SettleDrafts(seq, accepted: 2);
        Assert.Equal(9, seq.ComputedCount);
        Assert.Equal(10, seq.Count);
        Assert.Equal(0, seq.DraftCount);
        Assert.Equal(3, seq.Blocks.Count);
        Assert.Equal(3, scheduler.Blocks.UsedBlocks);
        // Blocks 0 and 1 are full of real tokens and published; nothing of 9..12 is in the cache.
        Assert.Equal(2, seq.HashedBlocks);
        Assert.Equal(2, scheduler.Blocks.CachedBlocks);

        // A later sequence whose prompt continues with the rejected drafts finds only the two real blocks.
        var other = new Sequence(2, [1, 2, 3, 4, 5, 6, 30, 7, 8, 9, 10, 11, 0], 4, 0, 1, BlockHash.Root("t"));
        scheduler.Blocks.AttachCachedPrefix(other);
        Assert.Equal(8, other.ComputedCount);
        var same = new Sequence(3, [1, 2, 3, 4, 5, 6, 30, 7, 8, 20, 0], 4, 0, 1, BlockHash.Root("t"));
        scheduler.Blocks.AttachCachedPrefix(same);
        Assert.Equal(8, same.ComputedCount);
    }

    [Fact]
    public void DraftsGetOnlyWhatIsLeftOfTheBudgetAndTheFreeBlocks()
    {
        var (scheduler, seq) = Decoding(blocks: 16, budget: 4, prompt: [1, 2, 3, 4, 5, 6]);
        Draft(seq, 7, 8, 9, 10, 11, 12);
        var step = scheduler.Schedule();
        Assert.Equal(4, step.Counts[0]);
        Assert.Equal(3, seq.DraftCount);
        scheduler.Complete(step);
        seq.Append(7);
        scheduler.SettleDrafts(seq, accepted: 0);

        // Two blocks in the pool: the sequence holds both (positions 0..7), so no draft past position 7 fits.
        var (tight, tightSeq) = Decoding(blocks: 2, budget: 64, prompt: [1, 2, 3, 4, 5]);
        Draft(tightSeq, 7, 8, 9, 10);
        var tightStep = tight.Schedule();
        Assert.Equal(1 + 2, tightStep.Counts[0]);
        Assert.Equal(2, tightSeq.DraftCount);
        Assert.Equal(0, tight.Preemptions);

        var (full, fullSeq) = Decoding(blocks: 2, budget: 64, prompt: [1, 2, 3, 4, 5, 6, 7]);
        Draft(fullSeq, 7, 8, 9, 10);
        var fullStep = full.Schedule();
        Assert.Equal(1, fullStep.Counts[0]);
        Assert.Equal(0, fullSeq.DraftCount);
        Assert.Equal(0, full.Preemptions);
    }

    [Fact]
    public void AStepThatPreemptsCarriesNoDrafts()
    {
        // Two sequences fill the 4 blocks; the older one's next token needs a fifth, so the younger is preempted.
        var scheduler = new Scheduler(new SchedulerOptions { MaxBatchedTokens = 64, MaxPrefillChunk = 64 }, new BlockAllocator(4, BlockSize, prefixCaching: false));
        var older = new Sequence(1, [1, 2, 3, 4, 5, 6, 7, 8], 8, 0, 0, BlockHash.Root("t")) { Speculation = new SpeculativeConfig() };
        var younger = new Sequence(2, [1, 2, 3, 4, 5, 6, 7], 8, 0, 1, BlockHash.Root("t"));
        scheduler.Add(older);
        scheduler.Add(younger);
        scheduler.Complete(scheduler.Schedule());
        older.Append(9);
        younger.Append(9);
        Draft(older, 10, 11);
        var step = scheduler.Schedule();
        Assert.Equal(1, scheduler.Preemptions);
        Assert.Equal([1], step.Counts);
        Assert.Equal(0, older.DraftCount);
    }

    [Fact]
    public void AWaitingArrivalIsAdmittedBeforeDraftsTakeTheBudget()
    {
        var (scheduler, seq) = Decoding(blocks: 16, budget: 6, prompt: [1, 2, 3]);
        var arrival = new Sequence(2, [5, 5, 5, 5], 8, 0, 1, BlockHash.Root("t"));
        scheduler.Add(arrival);
        Draft(seq, 7, 8, 9, 10);
        var step = scheduler.Schedule();
        Assert.Equal(2, step.Sequences.Count);
        Assert.Equal(4, step.Counts[1]);
        Assert.Equal(1 + 1, step.Counts[0]);
        Assert.Equal(1, seq.DraftCount);
    }
}
