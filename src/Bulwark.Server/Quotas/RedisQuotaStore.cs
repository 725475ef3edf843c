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
    public RedisQuotaStore(IConnectionMultiplexer redis, string prefix, TimeSpan leaseLifetime) : this(redis, prefix, null, leaseLifetime) { }

    /// <summary>
    /// With <paramref name="testClock"/>, the scripts take "now" from it instead of Redis's clock, so a
    /// test can move time by hand and hold the Redis script to the same properties as the in-memory store.
    /// </summary>
    internal RedisQuotaStore(IConnectionMultiplexer redis, string prefix, TimeProvider? testClock, TimeSpan? leaseLifetime = null)
    {
        this.redis = redis;
        this.prefix = prefix;
        this.testClock = testClock;
        LeaseLifetime = leaseLifetime ?? DefaultLeaseLifetime;
    }

    /// <summary>
    /// The connection the server uses. A first connection slower than the connect timeout (a loaded host,
    /// Redis restarting) must not fail requests for good: the multiplexer keeps retrying in the background,
    /// within about 2 s of Redis coming back. Commands fail at once while it has no connection, rather than
    /// queueing for the command timeout, so a dead Redis costs a request nothing: the quota store answers
    /// without it (<see cref="ResilientQuotaStore"/>).
    /// </summary>
    public static ConnectionMultiplexer Connect(string configuration)
    {
        var options = ConfigurationOptions.Parse(configuration);
        options.AbortOnConnectFail = false;
        options.BacklogPolicy = BacklogPolicy.FailFast;
        options.ReconnectRetryPolicy = new ExponentialRetry(250, 2000);
        return ConnectionMultiplexer.Connect(options);
    }

    /// <summary><see cref="QuotaOptions.LeaseLifetime"/> unless configured.</summary>
    public static readonly TimeSpan DefaultLeaseLifetime = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How long a concurrency lease lives past its last renewal. The replica holding it renews it every
    /// <see cref="RenewInterval"/> while its request runs (<see cref="QuotaLeaseRenewer"/>), so a request may
    /// run for hours, and a lease left open by a replica that died expires within this.
    /// </summary>
    public TimeSpan LeaseLifetime { get; }

    /// <summary>A third of the lifetime: two renewals can be lost (a slow Redis, a paused process) before a lease expires.</summary>
    public TimeSpan? RenewInterval => LeaseLifetime / 3;

    /// <summary>
    /// Pushes each lease's expiry to now + <see cref="LeaseLifetime"/>, only where it is still open
    /// (<c>ZADD XX</c>): a lease settled meanwhile is not brought back. One script call per key, pipelined.
    /// </summary>
    public async ValueTask RenewAsync(IReadOnlyCollection<OpenLease> leases, CancellationToken ct)
    {
        var database = redis.GetDatabase();
        var ttl = (long)LeaseLifetime.TotalMicroseconds;
        var calls = leases.GroupBy(l => l.KeyId, StringComparer.Ordinal).Select(key =>
            database.ScriptEvaluateAsync(RenewScript, [Keys(key.Key)[1]], [ttl, Now(), .. key.Select(l => (RedisValue)l.LeaseId)]));
        await Task.WhenAll(calls).WaitAsync(ct);
    }

    private static readonly string RenewScript = QuotaScripts.Now(2) + """
        local ttl, renewed = tonumber(ARGV[1]), 0
        for i = 3, #ARGV do renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + ttl, ARGV[i]) end
        if redis.call('ZCARD', KEYS[1]) > 0 then redis.call('PEXPIRE', KEYS[1], math.ceil(ttl / 1000)) end
        return renewed
        """;

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

    /// <summary>
    /// Charges what a replica admitted on its own while Redis was unreachable (<see cref="ResilientQuotaStore"/>):
    /// <paramref name="requests"/> and <paramref name="tokens"/> move the key's buckets forward from now,
    /// unchecked (a charge may leave a bucket more than a minute ahead: it then refuses until it drains),
    /// and <paramref name="openLeases"/>, concurrency slots still open there, are added to the shared ones.
    /// </summary>
    public async ValueTask ChargeAsync(string keyId, KeyLimits limits, long requests, long tokens, IReadOnlyList<string> openLeases)
    {
        RedisValue[] args = [limits.RequestsPerMinute, limits.TokensPerMinute, requests, tokens, (long)LeaseLifetime.TotalMicroseconds, Now(),
            .. openLeases.Select(l => (RedisValue)l)];
        await redis.GetDatabase().ScriptEvaluateAsync(ChargeScript, Keys(keyId), args);
    }

    /// <summary>Throws unless Redis answers now.</summary>
    public async ValueTask PingAsync() => await redis.GetDatabase().PingAsync();

    /// <summary>Where Redis is, for log lines (endpoints only: the configuration may hold a password).</summary>
    public string Description => string.Join(",", redis.GetEndPoints().Select(e => e.ToString()));

    // Same hash and sorted set as QuotaScripts.Admit; rt and tt are TATs in µs, kept with 17 digits.
    private static readonly string ChargeScript = QuotaScripts.Now(6) + """
        local W = 60000000
        local rpm, tpm, requests, tokens, leaseTtl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
        if rpm > 0 and requests > 0 then
          local rt = tonumber(redis.call('HGET', KEYS[1], 'rt')) or 0
          redis.call('HSET', KEYS[1], 'rt', string.format('%.17g', math.max(rt, now) + requests * W / rpm))
          redis.call('PEXPIRE', KEYS[1], 90000000)
        end
        if tpm > 0 and tokens > 0 then
          local tt = tonumber(redis.call('HGET', KEYS[1], 'tt')) or 0
          redis.call('HSET', KEYS[1], 'tt', string.format('%.17g', math.max(tt, now) + tokens * W / tpm))
          redis.call('PEXPIRE', KEYS[1], 90000000)
        end
        for i = 7, #ARGV do redis.call('ZADD', KEYS[2], now + leaseTtl, ARGV[i]) end
        if #ARGV >= 7 then redis.call('PEXPIRE', KEYS[2], math.ceil(leaseTtl / 1000)) end
        return 1
        """;

    // Empty tells the script to read Redis's TIME.
    private RedisValue Now() => testClock is null
        ? RedisValue.EmptyString
        : (testClock.GetUtcNow().UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10;

    private RedisKey[] Keys(string keyId) => [$"{prefix}{{{keyId}}}:q", $"{prefix}{{{keyId}}}:c"];
}
