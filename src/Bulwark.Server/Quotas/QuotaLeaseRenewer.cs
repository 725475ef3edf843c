using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Quotas;

/// <summary>The concurrency leases this replica holds now: opened at admission, gone at settlement.</summary>
public sealed class OpenLeases
{
    private readonly ConcurrentDictionary<string, string> _leases = new(StringComparer.Ordinal);

    public int Count => _leases.Count;

    internal void Add(string keyId, string leaseId) => _leases[leaseId] = keyId;

    internal void Remove(string leaseId) => _leases.TryRemove(leaseId, out _);

    public IReadOnlyCollection<OpenLease> Snapshot() => _leases.Select(p => new OpenLease(p.Value, p.Key)).ToList();
}

/// <summary>
/// Keeps this replica's concurrency leases alive in a store where they expire (Redis): every
/// <see cref="IQuotaStore.RenewInterval"/> it renews those still open, so a request holds its slot for
/// as long as it runs, and the slots of a replica that died free themselves within one lease lifetime.
/// </summary>
public sealed class QuotaLeaseRenewer(IQuotaStore store, OpenLeases open, TimeProvider time, ILogger<QuotaLeaseRenewer> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (store.RenewInterval is not { } interval) return;
        using var timer = new PeriodicTimer(interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                var leases = open.Snapshot();
                if (leases.Count == 0) continue;
                try
                {
                    await store.RenewAsync(leases, stoppingToken);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // The next tick tries again; two can fail before a lease expires.
                    logger.LogWarning("quotas: {Count} concurrency leases could not be renewed: {Error}", leases.Count, e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
    }
}
