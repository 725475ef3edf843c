using Bulwark.Server.Requests;
using Bulwark.Server.Security;

namespace Bulwark.Server.Quotas;

/// <summary>
/// Where quota state lives: this process (<see cref="InMemoryQuotaStore"/>) or Redis shared by every
/// replica (<see cref="RedisQuotaStore"/>). Both implement the same algorithm, all or nothing:
/// requests/min and tokens/min are GCRA (a token bucket holding one minute's worth, refilled
/// continuously), requests/hour and tokens/hour are counters per UTC hour as tokens/day is a counter
/// per UTC day, concurrency is a count of open leases. The per-minute limits shape traffic, so they
/// refill smoothly; the hourly and daily ones are budgets, so like the day the hour is a fixed window
/// an operator can read off a clock (it starts again on the hour, and a refusal's Retry-After is the
/// time left until then), settlement corrects exactly the window that was charged, and a burst at the
/// turn of the hour is still held by the per-minute limits.
/// </summary>
public interface IQuotaStore
{
    /// <summary>Checks every limit and, only if all pass, charges one request and <paramref name="tokens"/> tokens and opens a lease.</summary>
    ValueTask<QuotaVerdict> AdmitAsync(string keyId, KeyLimits limits, long tokens, string leaseId, CancellationToken ct);

    /// <summary>Corrects the token charge from <paramref name="reserved"/> to <paramref name="actual"/> and closes the lease.</summary>
    ValueTask SettleAsync(string keyId, KeyLimits limits, string leaseId, long reserved, long actual, QuotaVerdict admitted, CancellationToken ct);

    /// <summary>How often this replica must renew its open concurrency leases; null when they never expire (this process's own store).</summary>
    TimeSpan? RenewInterval => null;

    /// <summary>Extends the open <paramref name="leases"/> (those still open in the store; a closed one is not reopened).</summary>
    ValueTask RenewAsync(IReadOnlyCollection<OpenLease> leases, CancellationToken ct) => ValueTask.CompletedTask;
}

/// <summary>A concurrency slot this replica holds: its key and its lease.</summary>
public readonly record struct OpenLease(string KeyId, string LeaseId);
