namespace Bulwark.Server.Quotas;

/// <summary><c>Bulwark:Quotas</c> in configuration.</summary>
public sealed class QuotaOptions
{
    /// <summary>StackExchange.Redis configuration (e.g. <c>redis:6379</c>); empty keeps quotas in memory.</summary>
    public string? Redis { get; set; }

    /// <summary>Prefix of every Redis key Bulwark writes.</summary>
    public string RedisPrefix { get; set; } = "bulwark:";
}
