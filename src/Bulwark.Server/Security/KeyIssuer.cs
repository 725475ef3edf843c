using Bulwark.Server.Audit;
using Bulwark.Server.Storage;

namespace Bulwark.Server.Security;

/// <summary>A key just made: the text is shown to the operator once and never stored.</summary>
public sealed record IssuedKey(ApiKeyRecord Record, string Key);

/// <summary>
/// Creates, revokes and rotates keys; each change is audited and announced on the incident log
/// so every replica drops its cached copy within one poll. Used by the admin API and the CLI alike.
/// </summary>
public sealed class KeyIssuer(SecurityStorage storage, ApiKeyHasher hasher, TimeProvider time)
{
    public async Task<IssuedKey> CreateAsync(KeySpec spec, string actor, CancellationToken ct = default)
    {
        var now = time.GetUtcNow();
        spec.Validate(now);
        var (id, key) = ApiKeyFormat.Generate(spec.IsAdmin);
        var record = new ApiKeyRecord(id, hasher.Hash(key), spec.IsAdmin, spec.Tenant, spec.Name, spec.Models, spec.Limits,
            spec.Priority, spec.ExpiresAt, Revoked: false, CreatedAt: now, LastUsedAt: null, ReplacedBy: null) { Guard = spec.Guard };
        await storage.Keys.InsertAsync(record, ct);
        await AuditAsync("key.created", record, $"by {actor}", ct);
        return new IssuedKey(record, key);
    }

    /// <summary>Revokes a key everywhere; false when the id is unknown.</summary>
    public async Task<bool> RevokeAsync(string id, string actor, CancellationToken ct = default)
    {
        var record = await storage.Keys.FindAsync(id, ct);
        if (record is null || !await storage.Keys.RevokeAsync(id, null, ct)) return false;
        await storage.Incidents.AppendAsync(IncidentKinds.KeyChanged, id, ct);
        await AuditAsync("key.revoked", record, $"by {actor}", ct);
        return true;
    }

    /// <summary>
    /// Issues a new key with the old one's tenant, models, limits and expiry, then revokes the old
    /// one. Null when the id is unknown or already revoked.
    /// </summary>
    public async Task<IssuedKey?> RotateAsync(string id, string actor, CancellationToken ct = default)
    {
        var old = await storage.Keys.FindAsync(id, ct);
        if (old is null || old.Revoked) return null;
        var issued = await CreateAsync(new KeySpec
        {
            Name = old.Name, Tenant = old.Tenant, Models = old.Models, Limits = old.Limits, Priority = old.Priority,
            ExpiresAt = old.IsExpired(time.GetUtcNow()) ? null : old.ExpiresAt, IsAdmin = old.IsAdmin,
            Guard = old.Guard,
        }, actor, ct);
        await storage.Keys.RevokeAsync(id, issued.Record.Id, ct);
        await storage.Incidents.AppendAsync(IncidentKinds.KeyChanged, id, ct);
        await AuditAsync("key.rotated", old, $"by {actor}; replaced by {issued.Record.Id}", ct);
        return issued;
    }

    /// <summary>
    /// First start: when no usable admin key exists, creates one and returns it (to print once);
    /// otherwise null. A server is thus never open and a newcomer never locked out.
    /// </summary>
    public async Task<IssuedKey?> EnsureInitialAdminKeyAsync(CancellationToken ct = default)
    {
        if (await storage.Keys.AnyAdminKeyAsync(ct)) return null;
        return await CreateAsync(new KeySpec { Name = "initial-admin", Tenant = "admin", IsAdmin = true }, "first-start", ct);
    }

    private Task AuditAsync(string kind, ApiKeyRecord record, string detail, CancellationToken ct) =>
        storage.Audit.WriteAsync([new AuditRecord { At = time.GetUtcNow(), Kind = kind, KeyId = record.Id, Tenant = record.Tenant, Detail = detail }], ct);
}
