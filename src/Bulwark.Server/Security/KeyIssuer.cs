using Bulwark.Server.Audit;
using Bulwark.Server.Storage;

namespace Bulwark.Server.Security;

/// <summary>
/// A key just made: the text is shown to the operator once and never stored. After a rotation,
/// <see cref="Replaced"/> is the old key as it now stands (revoked, or retiring at the end of its grace).
/// </summary>
public sealed record IssuedKey(ApiKeyRecord Record, string Key)
{
    public ApiKeyRecord? Replaced { get; init; }
}

/// <summary>A change the key's current state does not allow (such as rotating a key that is already being retired); the message says what to do instead.</summary>
public sealed class KeyConflictException(string message) : InvalidOperationException(message);

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
    /// Issues a new key with the old one's tenant, models, limits and expiry. Without
    /// <paramref name="grace"/> the old key is revoked at once; with it, the old key keeps working
    /// until now + grace (never past its own expiry), then every replica refuses it: the end is
    /// stored with the key and checked on each request (see <see cref="ApiKeyRecord.IsRetired"/>).
    /// Null when the id is unknown or already revoked.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="grace"/> is negative or above <see cref="RotationGrace.Max"/>.</exception>
    /// <exception cref="KeyConflictException">The key was already rotated with a grace period that has not been revoked.</exception>
    public async Task<IssuedKey?> RotateAsync(string id, string actor, TimeSpan grace = default, CancellationToken ct = default)
    {
        RotationGrace.Check(grace);
        var old = await storage.Keys.FindAsync(id, ct);
        if (old is null || old.Revoked) return null;
        var now = time.GetUtcNow();
        if (old.RetiresAt is { } retiring) throw AlreadyRetiring(old, retiring, now);
        var issued = await CreateAsync(new KeySpec
        {
            Name = old.Name, Tenant = old.Tenant, Models = old.Models, Limits = old.Limits, Priority = old.Priority,
            ExpiresAt = old.IsExpired(now) ? null : old.ExpiresAt, IsAdmin = old.IsAdmin,
            Guard = old.Guard,
        }, actor, ct);
        var newId = issued.Record.Id;
        var retiresAt = old.ExpiresAt is { } expires && expires < now + grace ? expires : now + grace;
        if (grace == TimeSpan.Zero) await storage.Keys.RevokeAsync(id, newId, ct);
        else if (!await storage.Keys.RetireAsync(id, newId, retiresAt, ct))
        {
            // Another rotation (or a revoke) of the same key got there first: the key just issued replaces nothing.
            await RevokeAsync(newId, actor, ct);
            var current = await storage.Keys.FindAsync(id, ct);
            if (current is { Revoked: false, RetiresAt: { } other }) throw AlreadyRetiring(current, other, now);
            return null;
        }
        // Every replica drops its cached copy, so from its next request on it checks the stored end of the grace.
        await storage.Incidents.AppendAsync(IncidentKinds.KeyChanged, id, ct);
        var outcome = grace == TimeSpan.Zero
            ? "grace 0: revoked at once"
            : $"grace {RotationGrace.Format(grace)}: the old key works until {Utc(retiresAt)}";
        await AuditAsync("key.rotated", old, $"by {actor}; replaced by {newId}; {outcome}", ct);
        return issued with { Replaced = await storage.Keys.FindAsync(id, ct) };
    }

    private static KeyConflictException AlreadyRetiring(ApiKeyRecord old, DateTimeOffset retiresAt, DateTimeOffset now) => new(
        $"key {old.Id} was already rotated into {old.ReplacedBy} and {(now >= retiresAt ? "stopped working at" : "works until")} " +
        $"{Utc(retiresAt)}: rotate {old.ReplacedBy} instead, or revoke {old.Id} to end its grace now");

    private static string Utc(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);

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
