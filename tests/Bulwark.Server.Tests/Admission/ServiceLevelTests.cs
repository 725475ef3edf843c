using Bulwark.Server.Admission;
using Bulwark.Server.Backends;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Bulwark.Server.Tests.Admission;

/// <summary>The admission queue's priority shedding and the degradation levels it drives, on a hand-moved clock.</summary>
public sealed class ServiceLevelTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 7, 9, 0, 0, TimeSpan.Zero);

    private sealed class Bed : IDisposable
    {
        public readonly FakeTimeProvider Time = new(Start);
        public readonly AdmissionQueue Queue;
        public readonly ServiceLevel Level;
        public readonly ReplicaIsolation Isolation;
        public readonly ServerMetrics Metrics;
        public readonly List<AdmissionLease> Held = [];

        public Bed(int slots, int queue, DegradationOptions? options = null)
        {
            var admission = new AdmissionOptions { MaxConcurrentRequests = slots, MaxQueueLength = queue, MaxQueueWait = TimeSpan.FromMinutes(10) };
            Queue = new AdmissionQueue(admission, Time);
            Metrics = new ServerMetrics(() => new BackendStatistics(), () => (Queue.Running, Queue.Waiting));
            Isolation = new ReplicaIsolation(Time, NullLogger<ReplicaIsolation>.Instance);
            Level = new ServiceLevel(Queue, Isolation, options ?? new DegradationOptions(), admission, Metrics, Time, NullLogger<ServiceLevel>.Instance);
        }

        public async Task FillSlotsAsync(int n)
        {
            for (var i = 0; i < n; i++) Held.Add(await Queue.EnterAsync(0, CancellationToken.None));
        }

        public void Dispose()
        {
            Level.Dispose();
            Metrics.Dispose();
        }
    }

    [Fact]
    public async Task AFullQueueShedsTheLatestLowestPriorityWaiterForAHigherNewcomer()
    {
        using var bed = new Bed(slots: 1, queue: 3);
        await bed.FillSlotsAsync(1);
        var low1 = bed.Queue.EnterAsync(1, CancellationToken.None).AsTask();
        var low2 = bed.Queue.EnterAsync(1, CancellationToken.None).AsTask();
        var mid = bed.Queue.EnterAsync(5, CancellationToken.None).AsTask();
        Assert.Equal(3, bed.Queue.Waiting);

        // Equal to the lowest waiter is not higher: the newcomer is refused, nobody is shed.
        var equal = Assert.Throws<AdmissionRejectedException>(() => bed.Queue.EnterAsync(1, CancellationToken.None));
        Assert.Equal(RejectionReason.QueueFull, equal.Reason);
        Assert.Contains("none of lower priority", equal.Message);

        // A higher newcomer takes the place of the latest of the lowest (low2), which is told why.
        var high = bed.Queue.EnterAsync(9, CancellationToken.None).AsTask();
        var shed = await Assert.ThrowsAsync<AdmissionRejectedException>(() => low2);
        Assert.Equal(RejectionReason.Shed, shed.Reason);
        Assert.Contains("priority 1", shed.Message);
        Assert.Equal(3, bed.Queue.Waiting);
        Assert.Equal(1, bed.Queue.Shed);
        Assert.False(low1.IsCompleted);

        // Slots then go highest first: high, mid, low1.
        bed.Held[0].Dispose();
        (await high).Dispose();
        (await mid).Dispose();
        (await low1).Dispose();
        Assert.Equal(0, bed.Queue.Waiting);
        Assert.Equal(0, bed.Queue.Running);
    }

    [Fact]
    public async Task TheOldestWaitGrowsWhileNothingIsAdmitted()
    {
        using var bed = new Bed(slots: 1, queue: 4);
        Assert.Equal(TimeSpan.Zero, bed.Queue.OldestWait());
        await bed.FillSlotsAsync(1);
        var first = bed.Queue.EnterAsync(0, CancellationToken.None).AsTask();
        bed.Time.Advance(TimeSpan.FromSeconds(3));
        var second = bed.Queue.EnterAsync(9, CancellationToken.None).AsTask();
        bed.Time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(TimeSpan.FromSeconds(5), bed.Queue.OldestWait());
        bed.Held[0].Dispose(); // the higher-priority (younger) one gets the slot; the oldest still waits
        var secondLease = await second;
        Assert.Equal(TimeSpan.FromSeconds(5), bed.Queue.OldestWait());
        secondLease.Dispose();
        (await first).Dispose();
        Assert.Equal(TimeSpan.Zero, bed.Queue.OldestWait());
    }

    [Fact]
    public async Task LevelsRiseAtOnceWithQueueDepthAndFallOnlyAfterTheRecoveryTime()
    {
        var options = new DegradationOptions { RecoveryTime = TimeSpan.FromSeconds(30) };
        using var bed = new Bed(slots: 1, queue: 10, options);
        await bed.FillSlotsAsync(1);
        var waiting = new List<(Task<AdmissionLease> Task, CancellationTokenSource Cancel)>();
        void Add(int n)
        {
            for (var i = 0; i < n; i++)
            {
                var cancel = new CancellationTokenSource();
                waiting.Add((bed.Queue.EnterAsync(0, cancel.Token).AsTask(), cancel));
            }
        }
        bed.Level.Evaluate();
        Assert.Equal(DegradationLevel.Normal, bed.Level.Level);

        Add(4); // 0.4 of the queue: below reduced's 0.5
        bed.Level.Evaluate();
        Assert.Equal(DegradationLevel.Normal, bed.Level.Level);
        Add(1); // 0.5: reduced, at once
        bed.Level.Evaluate();
        Assert.Equal(DegradationLevel.Reduced, bed.Level.Level);
        Assert.Equal(1024, bed.Level.MaxTokensCap);
        Add(4); // 0.9: minimal
        bed.Level.Evaluate();
        Assert.Equal(DegradationLevel.Minimal, bed.Level.Level);
        Assert.Contains("queue 9/10 waiting", bed.Level.Degradation.Why);

        foreach (var (_, cancel) in waiting) cancel.Cancel();
        Assert.Equal(0, bed.Queue.Waiting);
        bed.Level.Evaluate(); // calm starts
        bed.Time.Advance(TimeSpan.FromSeconds(29));
        bed.Level.Evaluate();
        Assert.Equal(DegradationLevel.Minimal, bed.Level.Level);
        bed.Time.Advance(TimeSpan.FromSeconds(1));
        bed.Level.Evaluate();
        Assert.Equal(DegradationLevel.Normal, bed.Level.Level);
        Assert.Null(bed.Level.MaxTokensCap);
    }

    [Fact]
    public async Task TheOldestWaitAloneRaisesTheLevelAndABriefCalmDoesNotLowerIt()
    {
        var options = new DegradationOptions { RecoveryTime = TimeSpan.FromSeconds(10) };
        using var bed = new Bed(slots: 1, queue: 100, options);
        await bed.FillSlotsAsync(1);
        using var cancel = new CancellationTokenSource();
        var waiter = bed.Queue.EnterAsync(0, cancel.Token).AsTask();
        bed.Time.Advance(TimeSpan.FromSeconds(4.9));
        bed.Level.Evaluate();
        Assert.Equal(DegradationLevel.Normal, bed.Level.Level);
        bed.Time.Advance(TimeSpan.FromSeconds(0.1)); // 5 s: reduced's wait trigger, though the queue is 1 % full
        bed.Level.Evaluate();
        Assert.Equal(DegradationLevel.Reduced, bed.Level.Level);

        cancel.Cancel();
        bed.Level.Evaluate();
        bed.Time.Advance(TimeSpan.FromSeconds(6));
        // Load returns before the recovery time is over: the calm restarts.
        using var again = new CancellationTokenSource();
        var second = bed.Queue.EnterAsync(0, again.Token).AsTask();
        bed.Time.Advance(TimeSpan.FromSeconds(5));
        bed.Level.Evaluate();
        Assert.Equal(DegradationLevel.Reduced, bed.Level.Level);
        again.Cancel();
        bed.Level.Evaluate();
        bed.Time.Advance(TimeSpan.FromSeconds(9));
        bed.Level.Evaluate();
        Assert.Equal(DegradationLevel.Reduced, bed.Level.Level);
        bed.Time.Advance(TimeSpan.FromSeconds(1));
        bed.Level.Evaluate();
        Assert.Equal(DegradationLevel.Normal, bed.Level.Level);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiter);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => second);
    }

    [Fact]
    public async Task EachLevelRefusesWhatItsStepSays()
    {
        var options = new DegradationOptions
        {
            Reduced = new() { QueueFill = 0.2, MaxTokens = 100 },
            Minimal = new() { QueueFill = 0.5, MaxTokens = 10, MinPriority = 5 },
            Offline = new() { QueueFill = 1.0 },
        };
        using var bed = new Bed(slots: 1, queue: 2, options);
        await bed.FillSlotsAsync(1);
        bed.Level.Evaluate();
        Assert.Null(bed.Level.Refusal(0, new RequestUsage()));

        using var cancel = new CancellationTokenSource();
        _ = bed.Queue.EnterAsync(9, cancel.Token).AsTask();
        bed.Level.Evaluate(); // 1/2: minimal
        Assert.Equal(DegradationLevel.Minimal, bed.Level.Level);
        var usage = new RequestUsage();
        var refused = bed.Level.Refusal(4, usage);
        Assert.NotNull(refused);
        Assert.Equal(503, refused.Status);
        Assert.Equal("server_degraded", refused.Code);
        Assert.Contains("priority 5 or more (this key: 4)", refused.Message);
        Assert.Equal("degraded:minimal", usage.RejectionReason);
        Assert.Null(bed.Level.Refusal(5, new RequestUsage()));
        Assert.Equal(10, bed.Level.MaxTokensCap);
        Assert.Null(bed.Level.NotReady());

        _ = bed.Queue.EnterAsync(9, cancel.Token).AsTask();
        bed.Level.Evaluate(); // 2/2: offline refuses every priority and fails /ready
        Assert.Equal(DegradationLevel.Offline, bed.Level.Level);
        Assert.Contains("takes no inference requests", bed.Level.Refusal(9, new RequestUsage())!.Message);
        Assert.StartsWith("degradation level offline", bed.Level.NotReady());
        cancel.Cancel();
    }

    [Fact]
    public void IsolationRefusesEveryPriorityUntilResumed()
    {
        using var bed = new Bed(slots: 1, queue: 1);
        Assert.True(bed.Isolation.Isolate("disk errors on node 3", "admin key k1"));
        Assert.False(bed.Isolation.Isolate("again", "admin key k1"));
        var usage = new RequestUsage();
        var refused = bed.Level.Refusal(9, usage)!;
        Assert.Equal(503, refused.Status);
        Assert.Equal("replica_isolated", refused.Code);
        Assert.Equal("replica_isolated", usage.RejectionReason);
        Assert.Contains("disk errors on node 3", bed.Level.NotReady());
        Assert.True(bed.Isolation.Resume("admin key k1"));
        Assert.False(bed.Isolation.Resume("admin key k1"));
        Assert.Null(bed.Level.Refusal(0, new RequestUsage()));
        Assert.Null(bed.Level.NotReady());
    }

    [Fact]
    public void DisabledDegradationNeverLeavesNormal()
    {
        using var bed = new Bed(slots: 1, queue: 1, new DegradationOptions { Enabled = false, Reduced = new() { QueueFill = 0.01 } });
        bed.Time.Advance(TimeSpan.FromMinutes(1));
        bed.Level.Evaluate();
        Assert.Equal(DegradationLevel.Normal, bed.Level.Level);
    }

    [Theory]
    [InlineData("Reduced", 0.0, null, null, 0, "QueueFill must be more than 0")]
    [InlineData("Minimal", 1.01, null, null, 0, "QueueFill must be more than 0 and at most 1")]
    [InlineData("Offline", null, 0.0, null, 0, "QueueWait must be more than 0")]
    [InlineData("Reduced", null, null, 0, 0, "MaxTokens must be at least 1")]
    [InlineData("Minimal", null, null, null, 10, "MinPriority must be between 0 and 9")]
    public void EveryStepSettingIsCheckedAtItsLimits(string level, double? fill, double? waitSeconds, int? maxTokens, int minPriority, string problem)
    {
        var step = new DegradationStep { QueueFill = fill, QueueWait = waitSeconds is { } s ? TimeSpan.FromSeconds(s) : null, MaxTokens = maxTokens, MinPriority = minPriority };
        var options = level switch
        {
            "Reduced" => new DegradationOptions { Reduced = step },
            "Minimal" => new DegradationOptions { Minimal = step },
            _ => new DegradationOptions { Offline = step },
        };
        Assert.Contains(options.Validate(), p => p.Contains($"Bulwark:Degradation:{level}:") && p.Contains(problem));
        // At the limits each is accepted.
        Assert.Empty(new DegradationOptions { Reduced = new() { QueueFill = 1.0, QueueWait = TimeSpan.FromHours(1), MaxTokens = 1, MinPriority = 9 } }.Validate());
    }
}
