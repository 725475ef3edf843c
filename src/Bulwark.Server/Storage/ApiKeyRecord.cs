using Bulwark.Server.Requests;

namespace Bulwark.Server.Storage;

/// <summary>
/// One stored key. Holds the HMAC of the key, never the key. <see cref="Models"/> empty means
/// every model. Admin keys reach only admin routes (and /metrics); API keys never do.
/// </summary>
public sealed record ApiKeyRecord(
    string Id,
    string Hash,
    bool IsAdmin,
    string Tenant,
    string Name,
    IReadOnlyList<string> Models,
    KeyLimits Limits,
    int Priority,
    DateTimeOffset? ExpiresAt,
    bool Revoked,
    DateTimeOffset CreatedAt,
    DateTimeOffset? LastUsedAt,
    string? ReplacedBy)
{
    public bool IsExpired(DateTimeOffset now) => ExpiresAt is { } at && now >= at;

    /// <summary>The input guard policy for this key (<c>off|flag|block</c>); null: the tenant's or the server's. The key wins over its tenant.</summary>
    public GuardPolicy? Guard { get; init; }
}
