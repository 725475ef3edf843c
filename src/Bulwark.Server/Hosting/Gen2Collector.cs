using Bulwark.Server.Observability;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Hosting;

/// <summary>The GC's figures <see cref="Gen2Policy"/> judges: gen2 collections so far, committed bytes and the old generations' size after the last collection.</summary>
public readonly record struct GcReading(int Gen2Count, long CommittedBytes, long OldBytes)
{
    /// <summary>Now, from the runtime: old = gen2 + large object heap + pinned object heap after the last collection of any kind.</summary>
    public static GcReading Now()
    {
        var info = GC.GetGCMemoryInfo(GCKind.Any);
        var generations = info.GenerationInfo;
        long old = 0;
        for (var g = 2; g < generations.Length; g++) old += generations[g].SizeAfterBytes;
        return new GcReading(GC.CollectionCount(2), info.TotalCommittedBytes, old);
    }
}

/// <summary>
/// When the server asks the GC for a full collection (<c>Bulwark:Memory:Gen2WhenGrownBy</c>): the first reading after
/// each gen2 (the GC's own or ours) is the baseline; a later one whose committed bytes or old generations exceed it
/// by the margin or more asks for one. Growth that a gen2 does not take back (live data) moves the baseline up with
/// it, so the server never collects over and over for memory it is using.
/// </summary>
public sealed class Gen2Policy(long marginBytes)
{
    private GcReading? _baseline;

    public long MarginBytes { get; } = marginBytes;

    /// <summary>The reading growth is measured from (null before the first reading).</summary>
    public GcReading? Baseline => _baseline;

    /// <summary>Whether to collect now, given this reading; a margin of 0 or less never does.</summary>
    public bool ShouldCollect(GcReading now)
    {
        if (MarginBytes <= 0) return false;
        if (_baseline is not { } baseline || now.Gen2Count != baseline.Gen2Count)
        {
            _baseline = now;
            return false;
        }
        return now.CommittedBytes - baseline.CommittedBytes >= MarginBytes || now.OldBytes - baseline.OldBytes >= MarginBytes;
    }
}

/// <summary>
/// Runs <see cref="Gen2Policy"/> every <see cref="MemoryOptions.Gen2CheckInterval"/>: a blocking, compacting gen2 when
/// it says so, counted with its pause (<c>bulwark_dotnet_gc_requested_collections_total</c>,
/// <c>bulwark_dotnet_gc_requested_pause_seconds_total</c>).
/// </summary>
public sealed class Gen2Collector(MemoryOptions options, TimeProvider time, ILogger<Gen2Collector> logger) : BackgroundService
{
    private readonly Gen2Policy _policy = new(options.Gen2WhenGrownByBytes);
    private long _collections;

    /// <summary>Collections this collector asked for.</summary>
    public long Collections => Interlocked.Read(ref _collections);

    /// <summary>Collections this server asked for so far, process-wide (every collector in the process adds here).</summary>
    public static long Requested => RequestedCollections.Count;

    private static long s_lastRequestedAt = long.MinValue / 2;

    /// <summary>
    /// The GC is the process's: when several servers share a process (tests, a second host), a collection one of
    /// them asked for within the last check interval stands for all of them, so the process is never collected more
    /// often than once per interval however many collectors run.
    /// </summary>
    private bool CollectedRecently() => Environment.TickCount64 - Interlocked.Read(ref s_lastRequestedAt) < (long)options.Gen2CheckInterval.TotalMilliseconds;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_policy.MarginBytes <= 0) return;
        using var timer = new PeriodicTimer(options.Gen2CheckInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                var before = GcReading.Now();
                if (!_policy.ShouldCollect(before) || CollectedRecently()) continue;
                Interlocked.Exchange(ref s_lastRequestedAt, Environment.TickCount64);
                GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                var info = GC.GetGCMemoryInfo(GCKind.FullBlocking);
                var pause = info.PauseDurations.Length > 0 ? info.PauseDurations[0] : TimeSpan.Zero;
                RequestedCollections.Add(pause);
                Interlocked.Increment(ref _collections);
                var after = GcReading.Now();
                logger.LogInformation("Requested a full GC ({Count} so far): committed {Before:0.0} -> {After:0.0} MiB, old generations {OldBefore:0.0} -> {OldAfter:0.0} MiB, pause {Pause:0.0} ms",
                    Collections, before.CommittedBytes / 1048576.0, after.CommittedBytes / 1048576.0, before.OldBytes / 1048576.0, after.OldBytes / 1048576.0, pause.TotalMilliseconds);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
