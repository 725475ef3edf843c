using Bulwark.Server.Security;
using StackExchange.Redis;

namespace Bulwark.Server.Quotas;

/// <summary>
/// Quota state in Redis, shared by every replica: one script call per admission and one per
/// settlement (<see cref="QuotaScripts"/>), so limits stay exact however many replicas there are,
/// rather than drifting to limit × replicas. Keys carry the API key id in a hash tag so both of a
/// key's Redis keys land on one cluster slot.
/// </summary>
public sealed class RedisQuotaStore(IConnectionMultiplexer redis, string prefix) : IQuotaStore
{
    /// <summary>A concurrency lease left open by a crashed replica expires after this long.</summary>
    public static readonly TimeSpan LeaseLifetime = TimeSpan.FromMinutes(15);

    // StackExchange.Redis sends a script's SHA (EVALSHA) once Redis has seen its text.
    public async ValueTask<QuotaVerdict> AdmitAsync(string keyId, KeyLimits limits, long tokens, string leaseId, CancellationToken ct)
    {
        var result = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(QuotaScripts.Admit, Keys(keyId),
            [limits.RequestsPerMinute, limits.TokensPerMinute, limits.TokensPerDay, limits.MaxConcurrent, tokens, leaseId,
             (long)LeaseLifetime.TotalMicroseconds]))!;
        var admitted = (long)result[0] == 1;
        return new QuotaVerdict(admitted, admitted ? null : (string?)result[1], (long)result[2], (long)result[3], (long)result[4],
            (long)result[5], (long)result[6], (long)result[7], admitted ? (long)result[8] : 0);
    }

    public async ValueTask SettleAsync(string keyId, KeyLimits limits, string leaseId, long reserved, long actual, QuotaVerdict admitted, CancellationToken ct)
    {
        await redis.GetDatabase().ScriptEvaluateAsync(QuotaScripts.Settle, Keys(keyId),
            [limits.TokensPerMinute, limits.MaxConcurrent, reserved, actual, admitted.Day, leaseId, admitted.TokensReservedUntil]);
    }

    private RedisKey[] Keys(string keyId) => [$"{prefix}{{{keyId}}}:q", $"{prefix}{{{keyId}}}:c"];
}
