using System.Threading.Channels;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Audit;

/// <summary>
/// Takes audit records off the request path: <see cref="Enqueue"/> is a channel write, and a
/// background loop writes them in batches (with keys' last-used times, in the same transaction).
/// If the store falls behind by <see cref="AuditOptions.QueueCapacity"/> records, new ones are
/// dropped and counted rather than slowing requests; the count is logged.
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
    private TaskCompletionSource _flushNow = NewSignal();
    private long _dropped;
    private long _pending;

    public AuditWriter(SecurityStorage storage, KeyCache keys, AuditOptions options, TimeProvider time, ILogger<AuditWriter> logger)
    {
        if (options.Validate() is { Count: > 0 } problems) throw new ArgumentException(string.Join("; ", problems), nameof(options));
        (_storage, _keys, _options, _time, _logger) = (storage, keys, options, time, logger);
        // With DropWrite a full channel still answers TryWrite with true; only this callback tells of the drop.
        _queue = Channel.CreateBounded<AuditRecord>(
            new BoundedChannelOptions(options.QueueCapacity) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true }, OnDropped);
    }

    /// <summary>Records dropped because the queue was full or the store refused a batch.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

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
            while (await reader.WaitToReadAsync(stoppingToken))
            {
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
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Interlocked.Add(ref _dropped, batch.Count);
            _logger.LogError("audit: could not write {Count} records to {Store}: {Error}", batch.Count, _storage.Database.Description, e.Message);
        }
        finally
        {
            Interlocked.Add(ref _pending, -batch.Count);
            batch.Clear();
        }
    }

    private void OnDropped(AuditRecord record)
    {
        var dropped = Interlocked.Increment(ref _dropped);
        Interlocked.Decrement(ref _pending);
        // Once per power of two, so a flood of drops is visible without flooding the log.
        if ((dropped & (dropped - 1)) == 0)
            _logger.LogError("audit: the queue of {Capacity} records is full; {Dropped} records dropped so far", _options.QueueCapacity, dropped);
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
