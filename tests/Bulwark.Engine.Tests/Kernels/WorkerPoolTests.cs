using Bulwark.Engine.Kernels.Cpu;

namespace Bulwark.Engine.Tests.Kernels;

public unsafe class WorkerPoolTests
{
    private struct Counts
    {
        public int* PerItem;
        public int Length;
    }

    private static void CountItem(void* context, int item)
    {
        var counts = (Counts*)context;
        Interlocked.Increment(ref counts->PerItem[item]);
    }

    private static int[] RunOnce(WorkerPool pool, int items)
    {
        var perItem = new int[items];
        fixed (int* p = perItem)
        {
            var counts = new Counts { PerItem = p, Length = items };
            pool.Run(&CountItem, &counts, items);
        }
        return perItem;
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(2, 2)]
    [InlineData(3, 7)]
    [InlineData(4, 1000)]
    public void EveryItemRunsExactlyOnce(int threads, int items)
    {
        using var pool = new WorkerPool(threads);
        for (var round = 0; round < 50; round++)
            Assert.All(RunOnce(pool, items), c => Assert.Equal(1, c));
    }

    /// <summary>
    /// Back-to-back runs of 2–9 items, each with its own context: the caller no longer waits for every worker to check
    /// in, so a worker often wakes after its job is over — while the next one is being set up — and must then claim
    /// nothing (an item of the new job run with the old job's context, or one claimed twice, shows as a wrong count).
    /// </summary>
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void WorkersWakingLateNeverRunAnItemOfAnotherJob(int threads)
    {
        using var pool = new WorkerPool(threads);
        var first = new int[9];
        var second = new int[9];
        fixed (int* a = first)
        fixed (int* b = second)
        {
            for (var round = 0; round < 20_000; round++)
            {
                var items = 2 + round % 8;
                var counts = new Counts { PerItem = round % 2 == 0 ? a : b, Length = items };
                pool.Run(&CountItem, &counts, items);
                var perItem = round % 2 == 0 ? first : second;
                for (var i = 0; i < perItem.Length; i++)
                {
                    Assert.True(perItem[i] == (i < items ? 1 : 0), $"round {round}, {items} items: item {i} ran {perItem[i]} times");
                    perItem[i] = 0;
                }
            }
        }
    }

    [Fact]
    public void ARunStartedBeforeTheWorkersFirstGetScheduledCompletes()
    {
        // Regression: a worker that read the generation only once running missed the first job
        // and the caller waited for it forever.
        for (var i = 0; i < 200; i++)
        {
            using var pool = new WorkerPool(4);
            Assert.All(RunOnce(pool, 8), c => Assert.Equal(1, c));
        }
    }

    [Fact]
    public void ZeroItemsIsANoOp()
    {
        using var pool = new WorkerPool(2);
        Assert.Empty(RunOnce(pool, 0));
    }

    [Fact]
    public void ConcurrentCallersEachGetAllTheirItems()
    {
        using var pool = new WorkerPool(3);
        var failures = 0;
        var threads = Enumerable.Range(0, 4).Select(_ => new Thread(() =>
        {
            for (var round = 0; round < 200; round++)
                if (RunOnce(pool, 37).Any(c => c != 1)) Interlocked.Increment(ref failures);
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Equal(0, failures);
    }

    private static WorkerPool? _nestedPool;

    private static void NestedItem(void* context, int item)
    {
        var inner = RunOnce(_nestedPool!, 5);
        if (inner.All(c => c == 1)) Interlocked.Increment(ref ((Counts*)context)->PerItem[item]);
    }

    [Fact]
    public void ANestedCallFromAWorkerRunsInline()
    {
        using var pool = new WorkerPool(2);
        _nestedPool = pool;
        var perItem = new int[16];
        fixed (int* p = perItem)
        {
            var counts = new Counts { PerItem = p, Length = 16 };
            pool.Run(&NestedItem, &counts, 16);
        }
        Assert.All(perItem, c => Assert.Equal(1, c));
    }

    private static void NoOp(void* context, int item) { }

    [Fact]
    public void RunAllocatesNothingOnTheCallingThread()
    {
        using var pool = new WorkerPool(2);
        var context = 0;
        for (var i = 0; i < 10; i++) pool.Run(&NoOp, &context, 8);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++) pool.Run(&NoOp, &context, 8);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void WakingParkedWorkersAllocatesNothingOnAThreadThatHasRunBefore()
    {
        // Parked workers are woken through a monitor; a decode step that wakes them (after a pause
        // longer than the spin window) must allocate nothing either. A fresh thread stands for a
        // request thread that has not woken anyone yet.
        using var pool = new WorkerPool(2);
        long allocated = -1;
        var caller = new Thread(() =>
        {
            var context = 0;
            pool.Run(&NoOp, &context, 8);
            for (var i = 0; i < 3; i++)
            {
                var deadline = Environment.TickCount64 + 5_000;
                while (!pool.AnyParked && Environment.TickCount64 < deadline) Thread.Sleep(5);
                Assert.True(pool.AnyParked, "the worker never parked");
                var before = GC.GetAllocatedBytesForCurrentThread();
                pool.Run(&NoOp, &context, 8);
                allocated = Math.Max(allocated, GC.GetAllocatedBytesForCurrentThread() - before);
            }
        });
        caller.Start();
        caller.Join();
        Assert.Equal(0, allocated);
    }

    [Fact]
    public void WorkersParkWhenIdleAndWakeForTheNextCall()
    {
        using var pool = new WorkerPool(2);
        Thread.Sleep(50); // longer than the spin window: the worker parks
        Assert.All(RunOnce(pool, 100), c => Assert.Equal(1, c));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(1025)]
    public void ThreadCountOutsideOneTo1024IsRejected(int threads)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new WorkerPool(threads));
        Assert.Contains("between 1 and 1024", e.Message);
    }

    [Fact]
    public void ThreadCountsInsideTheLimitsAreAccepted()
    {
        using (var one = new WorkerPool(1)) Assert.Equal(1, one.ThreadCount);
        using var many = new WorkerPool(64);
        Assert.All(RunOnce(many, 300), c => Assert.Equal(1, c));
    }

    [Fact]
    public void ADisposedPoolStillRunsItemsInline()
    {
        var pool = new WorkerPool(2);
        pool.Dispose();
        Assert.All(RunOnce(pool, 10), c => Assert.Equal(1, c));
    }
}
