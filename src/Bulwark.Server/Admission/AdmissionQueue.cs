using System.Diagnostics;

namespace Bulwark.Server.Admission;

/// <summary>
/// A bounded priority queue in front of the engine. At most <see cref="AdmissionOptions.MaxConcurrentRequests"/>
/// requests hold a slot; up to <see cref="AdmissionOptions.MaxQueueLength"/> more wait, highest
/// priority first and first-come within a priority. When the queue is full, a newcomer that ranks
/// higher than the lowest-priority waiter takes its place and that waiter is refused (shed; the
/// latest of the lowest priority goes first); a newcomer that does not outrank anyone is refused.
/// A request is never left hanging: it gets a slot, or it is refused at once (queue full), or
/// shed, or when its wait reaches the deadline, or when the server starts shutting down. Time
/// comes from the injected <see cref="TimeProvider"/>.
/// </summary>
public sealed class AdmissionQueue(AdmissionOptions options, TimeProvider time)
{
    private readonly Lock _lock = new();
    private readonly PriorityQueue<Waiter, (int NegativePriority, long Order)> _queue = new();
    private long _order;
    private int _running;
    private int _waiting;
    private bool _stopped;
    private long _shed;

    public int Running { get { lock (_lock) return _running; } }

    public int Waiting { get { lock (_lock) return _waiting; } }

    /// <summary>How many may wait at most (<see cref="AdmissionOptions.MaxQueueLength"/>).</summary>
    public int Capacity => options.MaxQueueLength;

    /// <summary>Requests shed from the queue for a higher-priority newcomer since start.</summary>
    public long Shed => Interlocked.Read(ref _shed);

    /// <summary>
    /// How long the longest-waiting request has waited (zero when none waits): the queue's latency
    /// signal, which grows even while nothing is admitted. A scan of the waiters; call it seldom.
    /// </summary>
    public TimeSpan OldestWait()
    {
        long oldest = long.MaxValue;
        lock (_lock)
            foreach (var (w, _) in _queue.UnorderedItems)
                if (!w.Done && w.EnqueuedAt < oldest) oldest = w.EnqueuedAt;
        return oldest == long.MaxValue ? TimeSpan.Zero : time.GetElapsedTime(oldest);
    }

    /// <summary>Waits for a slot. Dispose the lease to give the slot back.</summary>
    /// <exception cref="AdmissionRejectedException">The queue is full, the wait hit its deadline, or the server is stopping.</exception>
    public ValueTask<AdmissionLease> EnterAsync(int priority, CancellationToken cancellationToken)
    {
        Waiter waiter;
        Waiter? shed = null;
        lock (_lock)
        {
            if (_stopped) throw ShuttingDown();
            if (_running < options.MaxConcurrentRequests && _waiting == 0)
            {
                _running++;
                return ValueTask.FromResult(new AdmissionLease(this));
            }
            if (_waiting >= options.MaxQueueLength)
            {
                shed = LowestBelow(priority) ?? throw new AdmissionRejectedException(RejectionReason.QueueFull,
                    $"The server is at capacity: {_running} requests are running and {_waiting} are waiting (the queue holds at most {options.MaxQueueLength}), none of lower priority than this one. Retry later.");
                shed.Done = true;
                _waiting--;
                _shed++;
            }
            waiter = new Waiter { Priority = priority, EnqueuedAt = time.GetTimestamp() };
            _queue.Enqueue(waiter, (-priority, _order++));
            _waiting++;
        }
        shed?.Fail(new AdmissionRejectedException(RejectionReason.Shed,
            $"The server is at capacity and this request (priority {shed.Priority}) gave its place in the queue to one of higher priority. Retry later."));
        waiter.Timer = time.CreateTimer(static state => ((Waiter)state!).Queue!.Expire((Waiter)state!), waiter, options.MaxQueueWait, Timeout.InfiniteTimeSpan);
        waiter.Queue = this;
        if (cancellationToken.CanBeCanceled)
            waiter.Cancellation = cancellationToken.Register(static state => ((Waiter)state!).Queue!.Abandon((Waiter)state!), waiter);
        return new ValueTask<AdmissionLease>(waiter.Completion.Task);
    }

    /// <summary>Refuses every waiting and future request; running ones keep their slots.</summary>
    public void StopAccepting()
    {
        List<Waiter> refused = [];
        lock (_lock)
        {
            _stopped = true;
            while (_queue.TryDequeue(out var w, out _))
                if (!w.Done) { w.Done = true; _waiting--; refused.Add(w); }
        }
        foreach (var w in refused) w.Fail(ShuttingDown());
    }

    internal void Release()
    {
        Waiter? next = null;
        lock (_lock)
        {
            Debug.Assert(_running > 0, "a lease was released twice");
            _running--;
            while (_queue.TryDequeue(out var w, out _))
            {
                if (w.Done) continue;
                w.Done = true;
                _waiting--;
                _running++;
                next = w;
                break;
            }
        }
        next?.Grant(new AdmissionLease(this));
    }

    /// <summary>The waiter to shed for a newcomer of <paramref name="priority"/>: the lowest priority below it, the latest of those. Under the lock.</summary>
    private Waiter? LowestBelow(int priority)
    {
        Waiter? lowest = null;
        var lowestOrder = long.MinValue;
        foreach (var (w, (negativePriority, order)) in _queue.UnorderedItems)
        {
            if (w.Done || w.Priority >= priority) continue;
            if (lowest is null || w.Priority < lowest.Priority || (w.Priority == lowest.Priority && order > lowestOrder))
                (lowest, lowestOrder) = (w, order);
        }
        return lowest;
    }

    private void Expire(Waiter waiter)
    {
        if (!TryRemove(waiter)) return;
        waiter.Fail(new AdmissionRejectedException(RejectionReason.QueueTimeout,
            $"The request waited {options.MaxQueueWait.TotalSeconds:0.###} s in the queue (the limit) without a free slot. Retry later."));
    }

    private void Abandon(Waiter waiter)
    {
        if (TryRemove(waiter)) waiter.Cancel();
    }

    // Removal is lazy: the entry stays in the heap marked done and is skipped when dequeued.
    private bool TryRemove(Waiter waiter)
    {
        lock (_lock)
        {
            if (waiter.Done) return false;
            waiter.Done = true;
            _waiting--;
            return true;
        }
    }

    private static AdmissionRejectedException ShuttingDown() =>
        new(RejectionReason.ShuttingDown, "The server is shutting down and accepts no new requests.");

    private sealed class Waiter
    {
        public readonly TaskCompletionSource<AdmissionLease> Completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public AdmissionQueue? Queue;
        public ITimer? Timer;
        public CancellationTokenRegistration Cancellation;
        public int Priority;
        public long EnqueuedAt;

        /// <summary>Set under the queue's lock by whichever of grant, expiry, cancellation or stop comes first.</summary>
        public bool Done;

        public void Grant(AdmissionLease lease) { Cleanup(); if (!Completion.TrySetResult(lease)) lease.Dispose(); }
        public void Fail(Exception e) { Cleanup(); Completion.TrySetException(e); }
        public void Cancel() { Cleanup(); Completion.TrySetCanceled(); }

        private void Cleanup()
        {
            Timer?.Dispose();
            Cancellation.Dispose();
        }
    }
}

/// <summary>A held admission slot; disposing it (once) passes the slot to the next waiter.</summary>
public sealed class AdmissionLease(AdmissionQueue queue) : IDisposable
{
    private int _disposed;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) queue.Release();
    }
}
