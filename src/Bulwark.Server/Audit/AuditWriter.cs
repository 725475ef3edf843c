using System.Threading.Channels;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Audit;

/// <summary>
/// Takes audit records off the request path: <see cref="Enqueue"/> is a lock-free channel write,
/// and a background loop writes batches (plus keys' last-used times) to the store. If the store
/// falls behind by <see cref="AuditOptions.QueueCapacity"/> records, new ones are dropped and
/// counted rather than slowing requests; the count is logged.
/// </summary>
public sealed class AuditWriter(SecurityStorage storage, KeyCache keys, AuditOptions options, ILogger<AuditWriter> logger) : BackgroundService
{
    private readonly Channel<AuditRecord> _queue = Channel.CreateBounded<AuditRecord>(
        new BoundedChannelOptions(options.QueueCapacity) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    private long _dropped;
    private long _pending;

    public long Dropped => Interlocked.Read(ref _dropped);

    public void Enqueue(AuditRecord record)
    {
        Interlocked.Increment(ref _pending);
        if (_queue.Writer.TryWrite(record)) return;
        Interlocked.Increment(ref _dropped);
        Interlocked.Decrement(ref _pending);
    }

    /// <summary>Waits until every record enqueued so far is written (tests and shutdown).</summary>
    public async Task FlushAsync(CancellationToken ct = default)
    {
        while (Interlocked.Read(ref _pending) > 0) await Task.Delay(10, ct);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<AuditRecord>(options.BatchSize);
        var reader = _queue.Reader;
        try
        {
            while (await reader.WaitToReadAsync(stoppingToken))
            {
                while (batch.Count < options.BatchSize && reader.TryRead(out var record)) batch.Add(record);
                await WriteAsync(batch, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            while (reader.TryRead(out var record)) batch.Add(record);
            await WriteAsync(batch, CancellationToken.None);
        }
    }

    private async Task WriteAsync(List<AuditRecord> batch, CancellationToken ct)
    {
        try
        {
            await storage.Audit.WriteAsync(batch, ct);
            await storage.Keys.TouchAsync(keys.TakeLastUsed(), ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Interlocked.Add(ref _dropped, batch.Count);
            logger.LogError("audit: could not write {Count} records to {Store}: {Error}", batch.Count, storage.Database.Description, e.Message);
        }
        finally
        {
            Interlocked.Add(ref _pending, -batch.Count);
            batch.Clear();
        }
    }
}
