using Bulwark.Engine.KvCache;
using Bulwark.Engine.Serving.Scheduling;
using CsCheck;

namespace Bulwark.Engine.Tests.Serving;

public class SchedulerPropertyTests
{
    private const int BlockSize = 4;

    private enum Op { Add, Step, Cancel, Preempt, Finish, Fork }

    [Fact]
    public void RandomOperationsNeverLeakBlocksAndTheCacheEndsEmpty()
    {
        var gen = Gen.Select(Gen.Enum<Op>(), Gen.Int[0, 1_000_000]).Array[1, 120];
        gen.Sample(ops => Run(ops, prefixCaching: true), iter: 300);
        gen.Sample(ops => Run(ops, prefixCaching: false), iter: 100);
    }

    private static void Run((Op Kind, int Arg)[] ops, bool prefixCaching)
    {
        var blocks = new BlockAllocator(capacity: 24, BlockSize, prefixCaching);
        var scheduler = new Scheduler(new SchedulerOptions { MaxBatchedTokens = 10, MaxSequences = 5, MaxPrefillChunk = 7 }, blocks);
        var live = new List<Sequence>();
        var roots = new[] { BlockHash.Root("a"), BlockHash.Root("b") };
        long nextId = 0;
        foreach (var (kind, arg) in ops)
        {
            switch (kind)
            {
                case Op.Add:
                    // Shared prefixes (tokens from a small alphabet) make prefix hits likely.
                    var length = 1 + arg % 30;
                    var prompt = Enumerable.Range(0, length).Select(i => (i * (arg % 3 + 1)) % 5).ToArray();
                    var seq = new Sequence(nextId++, prompt, 8, priority: arg % 3, arrival: nextId, roots[arg % 2]);
                    live.Add(seq);
                    scheduler.Add(seq);
                    break;
                case Op.Step:
                    var step = scheduler.Schedule();
                    scheduler.Complete(step);
                    for (var i = 0; i < step.Sequences.Count; i++)
                    {
                        var s = step.Sequences[i];
                        if (s.ComputedCount == s.Count)
                            s.Append(arg % 5);
                    }
                    break;
                case Op.Cancel when live.Count > 0:
                    var victim = live[arg % live.Count];
                    scheduler.Remove(victim);
                    live.Remove(victim);
                    break;
                case Op.Preempt when scheduler.Running.Count > 0:
                    scheduler.Preempt(scheduler.Running[arg % scheduler.Running.Count]);
                    break;
                case Op.Finish when scheduler.Running.Count > 0:
                    var done = scheduler.Running[arg % scheduler.Running.Count];
                    scheduler.Remove(done);
                    live.Remove(done);
                    break;
                case Op.Fork when scheduler.Running.Count > 0:
                    var parent = scheduler.Running[arg % scheduler.Running.Count];
                    var child = parent.Fork(nextId++, 8);
                    blocks.Fork(parent, child);
                    scheduler.AddRunning(child);
                    live.Add(child);
                    break;
            }
            CheckInvariants(blocks, scheduler, live);
        }
        foreach (var seq in live)
            scheduler.Remove(seq);
        Assert.Equal(0, blocks.UsedBlocks);
        Assert.Equal(blocks.Capacity, blocks.FreeBlocks);
        Assert.False(scheduler.HasWork);
    }

    private static void CheckInvariants(BlockAllocator blocks, Scheduler scheduler, List<Sequence> live)
    {
        var references = new int[blocks.Capacity];
        foreach (var seq in live)
        {
            Assert.True(seq.ComputedCount <= seq.Count);
            // A table covers the computed tokens and nothing beyond the next step's reservation.
            Assert.True(seq.Blocks.Count >= blocks.BlocksFor(seq.ComputedCount));
            Assert.True(seq.Blocks.Count <= blocks.BlocksFor(seq.Count));
            if (seq.Status == SequenceStatus.Waiting)
                Assert.Equal(0, seq.Blocks.Count);
            var distinct = new HashSet<int>();
            foreach (var b in seq.Blocks.AsSpan())
            {
                Assert.True(distinct.Add(b), "a block appears twice in one table");
                references[b]++;
            }
        }
        for (var b = 0; b < blocks.Capacity; b++)
        {
            Assert.Equal(references[b], blocks.Pool.RefCount(b));
            Assert.True(blocks.Pool.RefCount(b) >= 0);
            Assert.Equal(references[b] == 0, blocks.Pool.IsFree(b));
        }
        Assert.Equal(blocks.Capacity, blocks.FreeBlocks + blocks.UsedBlocks);
        Assert.Equal(live.Count(s => s.Status == SequenceStatus.Running), scheduler.Running.Count);
        Assert.Equal(live.Count(s => s.Status == SequenceStatus.Waiting), scheduler.Waiting.Count);
    }
}
