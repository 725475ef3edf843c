namespace Bulwark.Server.Quotas;

/// <summary><c>Bulwark:Quotas</c> in configuration.</summary>
public sealed class QuotaOptions
{
    /// <summary>StackExchange.Redis configuration (e.g. <c>redis:6379</c>); empty keeps quotas in memory.</summary>
    public string? Redis { get; set; }

    /// <summary>Prefix of every Redis key Bulwark writes.</summary>
    public string RedisPrefix { get; set; } = "bulwark:";

    /// <summary>What a replica does with requests of keys that have limits while Redis cannot be reached (docs/reliability.md).</summary>
    public RedisDownPolicy WhenRedisDown { get; set; } = RedisDownPolicy.Refuse;

    /// <summary>
    /// How long a concurrency slot in Redis outlives the last renewal by the replica that holds it: a replica
    /// renews its open slots every third of this, so a slot of a replica that died is free again within it.
    /// </summary>
    public TimeSpan LeaseLifetime { get; set; } = RedisQuotaStore.DefaultLeaseLifetime;

    /// <summary>The problems of these settings, each naming its setting; empty when there are none.</summary>
    public IReadOnlyList<string> Validate() =>
        LeaseLifetime < TimeSpan.FromSeconds(3) || LeaseLifetime > TimeSpan.FromHours(1)
            ? [$"Bulwark:Quotas:LeaseLifetime must be between 00:00:03 and 01:00:00; got {LeaseLifetime}."]
            : [];
}

/// <summary>
/// The two answers to "Redis is down" that never admit more than a key's limit: refuse, or admit
/// against this replica's share. Keys without limits never touch Redis and are served either way.
/// </summary>
public enum RedisDownPolicy
{
    /// <summary>503 <c>quota_store_unavailable</c> with <c>Retry-After</c> until Redis answers: no limit is enforced from a guess.</summary>
    Refuse,

    /// <summary>
    /// Admit against this replica's share of each limit (the limit divided by the live replicas, each key's
    /// minute taken as already spent); refuse with 503 what cannot be shared (a daily token budget, a
    /// limit below the replica count, an unknown replica count).
    /// </summary>
    Local,
}
