using Bulwark.Server.Requests;
using Bulwark.Server.Security;

namespace Bulwark.Server.Quotas;

/// <summary>
/// Where quota state lives: this process (<see cref="InMemoryQuotaStore"/>) or Redis shared by every
/// replica (<see cref="RedisQuotaStore"/>). Both implement the same algorithm, all or nothing:
/// requests/min and tokens/min are GCRA (a token bucket holding one minute's worth, refilled
/// continuously), tokens/day is a counter per UTC day, concurrency is a count of open leases.
/// </summary>
public interface IQuotaStore
{
    /// <summary>Checks every limit and, only if all pass, charges one request and <paramref name="tokens"/> tokens and opens a lease.</summary>
    ValueTask<QuotaVerdict> AdmitAsync(string keyId, KeyLimits limits, long tokens, string leaseId, CancellationToken ct);

    /// <summary>Corrects the token charge from <paramref name="reserved"/> to <paramref name="actual"/> and closes the lease.</summary>
    ValueTask SettleAsync(string keyId, KeyLimits limits, string leaseId, long reserved, long actual, QuotaVerdict admitted, CancellationToken ct);
}
