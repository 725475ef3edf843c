using System.Numerics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Bulwark.Server.Observability;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Audit;

/// <summary>
/// Takes audit records off the request path: <see cref="Enqueue"/> is a channel write, and a
/// background loop writes them in batches (with keys' last-used times, in the same transaction).
/// If the store falls behind by <see cref="AuditOptions.QueueCapacity"/> records, new ones are
/// dropped and counted rather than slowing requests; the count is logged. A batch the store
/// refuses (PostgreSQL down, a full disk under SQLite) goes to the <see cref="AuditSpool"/> in the
/// data directory and is written from there, at start-up and as soon as the store takes a batch
/// again (or within <see cref="SpoolRetryInterval"/>); what neither the store nor the spool can
/// take is dropped and counted (docs/reliability.md).
/// </summary>
/// <remarks>
/// Perf: after the first record arrives the writer waits <see cref="AuditOptions.FlushInterval"/>
/// before writing, so one transaction carries every request of that interval. Writing as soon as
/// a record arrived meant one SQLite transaction (two commits, each an fsync and dozens of system
/// calls) per request whenever requests came one at a time, on a core the request path needed:
/// measured with <c>bench serve --compare-security</c>, that was most of the security overhead.
/// </remarks>
public sealed class AuditWriter : BackgroundService
{
    private readonly SecurityStorage _storage;
    private readonly KeyCache _keys;
    private readonly AuditOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<AuditWriter> _logger;
    private readonly Channel<AuditRecord> _queue;
    private readonly ServerMetrics _metrics;
    private readonly AuditSpool? _spool;
    private TaskCompletionSource _flushNow = NewSignal();
    private long _dropped;
    private bool _losing;
    private long _pending;
    private bool _spooling;

    /// <summary>How often the writer offers the spool to the store when no new record comes to try it sooner.</summary>
    public static readonly TimeSpan SpoolRetryInterval = TimeSpan.FromSeconds(1);

    /// <param name="data">Where the spool lives (<c>state/audit.spool</c>); without it a refused batch is dropped.</param>
    public AuditWriter(SecurityStorage storage, KeyCache keys, AuditOptions options, TimeProvider time, ILogger<AuditWriter> logger,
        ServerMetrics? metrics = null, DataDirectory? data = null)
    {
        if (options.Validate() is { Count: > 0 } problems) throw new ArgumentException(string.Join("; ", problems), nameof(options));
        (_storage, _keys, _options, _time, _logger) = (storage, keys, options, time, logger);
        _metrics = metrics ?? new ServerMetrics(() => default, () => (0, 0));
        if (data is not null && options.SpoolLimitBytes > 0)
        {
            _spool = new AuditSpool(Path.Combine(data.StatePath, AuditSpool.FileName), options.SpoolLimitBytes);
            _metrics.AuditSpoolBytes = _spool.Length;
        }
        // With DropWrite a full channel still answers TryWrite with true; only this callback tells of the drop.
        _queue = Channel.CreateBounded<AuditRecord>(
            new BoundedChannelOptions(options.QueueCapacity) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true }, OnDropped);
    }

    /// <summary>Records dropped: the queue was full, or neither the store nor the spool took them.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>
    /// True from the moment a record is dropped (not stored, not spooled) until a batch is again stored or
    /// spooled whole: while true, what the server serves leaves no audit trail.
    /// </summary>
    public bool IsLosingRecords => Volatile.Read(ref _losing);

    /// <summary>Bytes of records in the spool, waiting for the store.</summary>
    public long Spooled => _spool?.Length ?? 0;

    public void Enqueue(AuditRecord record)
    {
        Interlocked.Increment(ref _pending);
        _queue.Writer.TryWrite(record);
    }

    /// <summary>Writes every record enqueued so far without waiting out the flush interval, and waits until they are written (tests and shutdown).</summary>
    public async Task FlushAsync(CancellationToken ct = default)
    {
        while (Interlocked.Read(ref _pending) > 0)
        {
            Volatile.Read(ref _flushNow).TrySetResult();
            await Task.Delay(10, ct);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<AuditRecord>(_options.BatchSize);
        var reader = _queue.Reader;
        try
        {
            // What an earlier run spooled (and perhaps had written already: the store skips those).
            await ReplayAsync(stoppingToken);
            while (true)
            {
                var ready = reader.WaitToReadAsync(stoppingToken).AsTask();
                if (_spool is { IsEmpty: false } && await Task.WhenAny(ready, Task.Delay(SpoolRetryInterval, _time, stoppingToken)) != ready)
                {
                    // No record came to try the store with: offer it the spool.
                    await ReplayAsync(stoppingToken);
                    if (!ready.IsCompleted) continue;
                }
                if (!await ready) break;
                await LingerAsync(stoppingToken);
                while (reader.TryPeek(out _))
                {
                    while (batch.Count < _options.BatchSize && reader.TryRead(out var record)) batch.Add(record);
                    // Not cancelled by the stop: a batch taken off the queue is written, or it would be lost
                    // (a stop during the write threw it away before the drain below could see it).
                    await WriteAsync(batch, CancellationToken.None);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            while (reader.TryRead(out var record)) batch.Add(record);
            await WriteAsync(batch, CancellationToken.None);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        // A stop right after the start may come before the loop ever ran; what it did not reach is written
        // here, unless the loop is still busy (the stop's own deadline passed), as only one reader may read.
        if (ExecuteTask is { IsCompleted: false }) return;
        var rest = new List<AuditRecord>();
        while (_queue.Reader.TryRead(out var record)) rest.Add(record);
        if (rest.Count > 0) await WriteAsync(rest, CancellationToken.None);
    }

    /// <summary>Waits the flush interval, or less when <see cref="FlushAsync"/> asks; a stop cancels the wait (and the caller's next read).</summary>
    private async Task LingerAsync(CancellationToken stoppingToken)
    {
        if (_options.FlushInterval <= TimeSpan.Zero) return;
        var flush = Volatile.Read(ref _flushNow);
        await Task.WhenAny(Task.Delay(_options.FlushInterval, _time, stoppingToken), flush.Task);
        if (flush.Task.IsCompleted) Interlocked.CompareExchange(ref _flushNow, NewSignal(), flush);
    }

    private async Task WriteAsync(List<AuditRecord> batch, CancellationToken ct)
    {
        var lastUsed = _keys.TakeLastUsed();
        try
        {
            await _storage.Audit.WriteAsync(batch, lastUsed, ct);
            Volatile.Write(ref _losing, false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The next batch carries them again (a key's last use never moves back).
            foreach (var (id, at) in lastUsed) _keys.MarkUsed(id, at);
            Spool(batch, e);
            return;
        }
        finally
        {
            Interlocked.Add(ref _pending, -batch.Count);
            batch.Clear();
        }
        // The store takes batches again: what waited in the spool goes now.
        await ReplayAsync(ct);
    }

    /// <summary>Keeps a batch the store refused in the spool; what does not fit, or cannot be written, is dropped and counted.</summary>
    private void Spool(List<AuditRecord> batch, Exception refusal)
    {
        if (_spool is null)
        {
            Drop(batch.Count, "store_refused", $"audit: could not write {batch.Count} records to {_storage.Database.Description}: {refusal.Message}");
            return;
        }
        if (!_spooling)
        {
            _spooling = true;
            _logger.LogError("audit: {Store} refused {Count} records ({Error}); keeping them in {Spool} until it takes them",
                _storage.Database.Description, batch.Count, refusal.Message, _spool.Path);
        }
        int kept;
        try { kept = _spool.Append(batch); }
        catch (IOException e)
        {
            Drop(batch.Count, "spool_unwritable", $"audit: the store refused {batch.Count} records and the spool {_spool.Path} could not be written either ({e.Message})");
            return;
        }
        _metrics.AuditSpooled.Add(kept);
        _metrics.AuditSpoolBytes = _spool.Length;
        if (kept == batch.Count) Volatile.Write(ref _losing, false);
        if (kept < batch.Count)
            Drop(batch.Count - kept, "spool_full", $"audit: the spool {_spool.Path} reached its limit of {_spool.Limit} bytes (Bulwark:Audit:SpoolLimitBytes)");
    }

    /// <summary>Writes the spool to the store and empties it; leaves it whole if the store refuses (the next try resends what went through: the store skips those).</summary>
    private async Task ReplayAsync(CancellationToken ct)
    {
        if (_spool is null || _spool.IsEmpty) return;
        var damaged = new StrongBox<long>();
        long written = 0;
        try
        {
            foreach (var batch in _spool.Read(_options.BatchSize, damaged))
            {
                await _storage.Audit.WriteAsync(batch, ct);
                written += batch.Count;
            }
            _spool.Clear();
        }
        catch (Exception e) when (e is IOException || (e is not OperationCanceledException && written > 0))
        {
            // Part of it went through, or the spool could not be read or emptied: tried again later.
            _logger.LogWarning("audit: replaying {Spool} stopped after {Written} records: {Error}", _spool.Path, written, e.Message);
            return;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return; // the store still refuses; said once when spooling began
        }
        _spooling = false;
        _metrics.AuditReplayed.Add(written);
        _metrics.AuditSpoolBytes = 0;
        if (damaged.Value > 0)
            _logger.LogWarning("audit: {Damaged} damaged lines of {Spool} were skipped (a crash or a full disk cut a write short)", damaged.Value, _spool.Path);
        _logger.LogInformation("audit: wrote {Count} spooled records to {Store}; the spool is empty", written, _storage.Database.Description);
    }

    private void Drop(int count, string reason, string message)
    {
        Volatile.Write(ref _losing, true);
        var before = Interlocked.Add(ref _dropped, count) - count;
        _metrics.AuditDropped.Add(count, new KeyValuePair<string, object?>("reason", reason));
        // Once per power of two of the total, so a flood of drops is visible without flooding the log.
        if (BitOperations.Log2((ulong)before + 1) != BitOperations.Log2((ulong)(before + count) + 1) || before == 0)
            _logger.LogError("{Message}; {Dropped} records dropped so far", message, before + count);
    }

    private void OnDropped(AuditRecord record)
    {
        Interlocked.Decrement(ref _pending);
        Drop(1, "queue_full", $"audit: the queue of {_options.QueueCapacity} records is full");
    }

    public override void Dispose()
    {
        base.Dispose();
        _spool?.Dispose();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
