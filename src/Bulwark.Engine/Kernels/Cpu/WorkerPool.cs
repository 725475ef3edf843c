using System.Diagnostics;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// A dedicated pool of worker threads for the kernels: one thread per core (the caller's thread
/// counts as one), spin-then-park, work split into items claimed with a compare-exchange on a ticket
/// (job, next item); a call returns when its items are done, whether or not every worker woke for it.
/// A call passes a function pointer and a pointer to a context the caller keeps on its stack,
/// so <see cref="Run"/> allocates nothing. Only one caller uses the workers at a time; a second
/// concurrent caller (another session on another thread) or a nested call runs its items inline.
/// </summary>
public sealed unsafe class WorkerPool : IDisposable
{
    // Perf: a layer's kernels follow each other within microseconds, so workers spin this long
    // before parking; parking and waking costs tens of microseconds per step.
    private static readonly long SpinTicks = Stopwatch.Frequency / 5_000; // 200 µs

    private static WorkerPool? _shared;
    private static readonly object SharedGate = new();

    private readonly Thread[] _threads;
    private readonly object _gate = new();
    private volatile bool _disposed;
    private int _busy;
    private int _generation;
    private int _parked;

    // The current job; written by the caller before the generation is bumped.
    private delegate*<void*, int, void> _work;
    private void* _context;
    private int _itemCount;

    // The job's generation (high 32 bits) and its next unclaimed item (low 32): a thread claims an item with a
    // compare-exchange that also checks the generation, so a worker that wakes after its job is over can never take
    // an item of the next one. The caller waits for _done (items finished), not for every worker to check in: a
    // worker that was descheduled while the caller ran all the items no longer holds the step up.
    private long _ticket;
    private int _done;

    [ThreadStatic] private static bool _isWorker;

    /// <param name="threadCount">Threads that run items, the caller included (at least 1).</param>
    public WorkerPool(int threadCount)
    {
        if (threadCount < 1 || threadCount > 1024)
            throw new ArgumentOutOfRangeException(nameof(threadCount), threadCount, "thread count must be between 1 and 1024");
        ThreadCount = threadCount;
        _threads = new Thread[threadCount - 1];
        for (var i = 0; i < _threads.Length; i++)
        {
            _threads[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"bulwark-kernel-{i + 1}" };
            _threads[i].Start();
        }
    }

    public int ThreadCount { get; }

    /// <summary>Whether a worker is parked now (waiting to be woken rather than spinning).</summary>
    internal bool AnyParked => Volatile.Read(ref _parked) > 0;

    /// <summary>The pool the model's kernels use; sized to the machine's cores unless <see cref="ConfigureShared"/> was called first.</summary>
    public static WorkerPool Shared
    {
        get
        {
            if (Volatile.Read(ref _shared) is { } pool) return pool;
            lock (SharedGate) return _shared ??= new WorkerPool(Environment.ProcessorCount);
        }
    }

    /// <summary>Replaces the shared pool with one of <paramref name="threadCount"/> threads (the old one is stopped).</summary>
    public static void ConfigureShared(int threadCount)
    {
        lock (SharedGate)
        {
            if (_shared?.ThreadCount == threadCount) return;
            var old = _shared;
            _shared = new WorkerPool(threadCount);
            old?.Dispose();
        }
    }

    /// <summary>
    /// Calls <paramref name="work"/>(context, item) once for every item in [0, itemCount), spread over
    /// the pool's threads, and returns when all have finished. <paramref name="context"/> must stay
    /// valid until then (a local of the caller).
    /// </summary>
    public void Run(delegate*<void*, int, void> work, void* context, int itemCount)
    {
        if (itemCount <= 0) return;
        if (itemCount == 1 || _threads.Length == 0 || _isWorker || _disposed
            || Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            for (var i = 0; i < itemCount; i++) work(context, i);
            return;
        }
        try
        {
            var generation = _generation + 1;
            // Closed first (no item left to claim, and no longer the last job's generation), so a late worker that read
            // some of these fields as they change can never claim an item with them. A full fence, not a release write:
            // a release orders the stores before it, not the field stores after it, which a weaker memory model (Arm64)
            // may make visible first — a late worker could then see the new item count beside the old open ticket.
            Interlocked.Exchange(ref _ticket, ((long)generation << 32) | int.MaxValue);
            _work = work;
            _context = context;
            _itemCount = itemCount;
            _done = 0;
            Volatile.Write(ref _ticket, (long)generation << 32);
            Volatile.Write(ref _generation, generation);
            if (Volatile.Read(ref _parked) > 0)
                lock (_gate) Monitor.PulseAll(_gate);
            RunItems(generation, work, context, itemCount);
            var spinner = new SpinWait();
            while (Volatile.Read(ref _done) != itemCount) spinner.SpinOnce(-1);
        }
        finally
        {
            _work = null;
            _context = null;
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>Claims and runs items of job <paramref name="generation"/> until none is left or another job has begun.</summary>
    private void RunItems(int generation, delegate*<void*, int, void> work, void* context, int count)
    {
        while (true)
        {
            var ticket = Volatile.Read(ref _ticket);
            var item = (int)ticket;
            if ((int)(ticket >> 32) != generation || item >= count) return;
            if (Interlocked.CompareExchange(ref _ticket, ticket + 1, ticket) != ticket) continue;
            work(context, item);
            Interlocked.Increment(ref _done);
        }
    }

    private void WorkerLoop()
    {
        _isWorker = true;
        // Generation 0 is the pool's state at construction: a Run that starts before this thread
        // first gets scheduled has already moved past it, and this worker must still take part.
        var seen = 0;
        while (true)
        {
            var start = Stopwatch.GetTimestamp();
            var spins = 0;
            while (Volatile.Read(ref _generation) == seen && !_disposed)
            {
                if ((++spins & 63) == 0 && Stopwatch.GetTimestamp() - start > SpinTicks)
                {
                    lock (_gate)
                    {
                        Interlocked.Increment(ref _parked);
                        while (Volatile.Read(ref _generation) == seen && !_disposed) Monitor.Wait(_gate);
                        Interlocked.Decrement(ref _parked);
                    }
                    break;
                }
                Thread.SpinWait(8);
            }
            if (_disposed) return;
            seen = Volatile.Read(ref _generation);
            // Read after the generation (the caller wrote them before it): this job's, or — if it is already over and
            // the next is being set up — partly a later one's; then the ticket was closed before they changed, and
            // RunItems, reading it after them (the fence), claims nothing.
            var work = _work;
            var context = _context;
            var count = _itemCount;
            Interlocked.MemoryBarrier();
            RunItems(seen, work, context, count);
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        // Wait for a job in flight to finish before stopping the workers.
        var spinner = new SpinWait();
        while (Interlocked.CompareExchange(ref _busy, 1, 0) != 0) spinner.SpinOnce(-1);
        _disposed = true;
        lock (_gate) Monitor.PulseAll(_gate);
        foreach (var t in _threads) t.Join();
    }
}
