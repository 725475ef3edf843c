using Bulwark.Server.Requests;

namespace Bulwark.Server.Storage;

/// <summary>
/// One stored key. Holds the HMAC of the key, never the key. <see cref="Models"/> empty means
/// every model. Admin keys reach only admin routes (and /metrics); API keys never do. A key
/// rotated with a grace period names its successor in <see cref="ReplacedBy"/> and keeps working
/// until <see cref="RetiresAt"/>; one rotated without grace is <see cref="Revoked"/> at once.
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

    /// <summary>When a rotation's grace ends (never after <see cref="ExpiresAt"/>); null: not being retired.</summary>
    public DateTimeOffset? RetiresAt { get; init; }

    /// <summary>
    /// Whether a rotation's grace has ended. Checked on every request against the stored instant, so
    /// every replica stops accepting the key at that time, whatever it has cached.
    /// </summary>
    public bool IsRetired(DateTimeOffset now) => RetiresAt is { } at && now >= at;

    /// <summary>The input guard policy for this key (<c>off|flag|block</c>); null: the tenant's or the server's. The key wins over its tenant.</summary>
    public GuardPolicy? Guard { get; init; }
}
