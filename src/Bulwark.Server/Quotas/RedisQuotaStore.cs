using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using StackExchange.Redis;

namespace Bulwark.Server.Quotas;

/// <summary>
/// Quota state in Redis, shared by every replica: one script call per admission and one per
/// settlement (<see cref="QuotaScripts"/>), so limits stay exact however many replicas there are,
/// rather than drifting to limit × replicas. Keys carry the API key id in a hash tag so both of a
/// key's Redis keys land on one cluster slot.
/// </summary>
public sealed class RedisQuotaStore : IQuotaStore
{
    private readonly IConnectionMultiplexer redis;
    private readonly string prefix;
    private readonly TimeProvider? testClock;

    /// <summary>A store whose clock is Redis's own (<c>TIME</c>): the only kind the server builds.</summary>
    public RedisQuotaStore(IConnectionMultiplexer redis, string prefix) : this(redis, prefix, null) { }

    /// <summary>
    /// With <paramref name="testClock"/>, the scripts take "now" from it instead of Redis's clock, so a
    /// test can move time by hand and hold the Redis script to the same properties as the in-memory store.
    /// </summary>
    internal RedisQuotaStore(IConnectionMultiplexer redis, string prefix, TimeProvider? testClock)
    {
        this.redis = redis;
        this.prefix = prefix;
        this.testClock = testClock;
    }

    /// <summary>A concurrency lease left open by a crashed replica expires after this long.</summary>
    public static readonly TimeSpan LeaseLifetime = TimeSpan.FromMinutes(15);

    // StackExchange.Redis sends a script's SHA (EVALSHA) once Redis has seen its text.
    public async ValueTask<QuotaVerdict> AdmitAsync(string keyId, KeyLimits limits, long tokens, string leaseId, CancellationToken ct)
    {
        var result = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(QuotaScripts.Admit, Keys(keyId),
            [limits.RequestsPerMinute, limits.TokensPerMinute, limits.TokensPerDay, limits.MaxConcurrent, tokens, leaseId,
             (long)LeaseLifetime.TotalMicroseconds, limits.RequestsPerHour, limits.TokensPerHour, Now()]))!;
        var admitted = (long)result[0] == 1;
        return new QuotaVerdict(admitted, admitted ? null : (string?)result[1], (long)result[2], (long)result[3], (long)result[4],
            (long)result[5], (long)result[6], (long)result[7], (long)result[8], (long)result[9], (long)result[10], (long)result[11], (long)result[12]);
    }

    public async ValueTask SettleAsync(string keyId, KeyLimits limits, string leaseId, long reserved, long actual, QuotaVerdict admitted, CancellationToken ct)
    {
        await redis.GetDatabase().ScriptEvaluateAsync(QuotaScripts.Settle, Keys(keyId),
            [limits.TokensPerMinute, limits.MaxConcurrent, reserved, actual, admitted.Day, leaseId, admitted.TokensReservedUntil, admitted.Hour, Now()]);
    }

    // Empty tells the script to read Redis's TIME.
    private RedisValue Now() => testClock is null
        ? RedisValue.EmptyString
        : (testClock.GetUtcNow().UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10;

    private RedisKey[] Keys(string keyId) => [$"{prefix}{{{keyId}}}:q", $"{prefix}{{{keyId}}}:c"];
}
