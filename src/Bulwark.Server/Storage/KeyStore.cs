using System.Data.Common;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;

namespace Bulwark.Server.Storage;

/// <summary>The <c>api_keys</c> table.</summary>
public sealed class KeyStore(Database database)
{
    private const string Columns =
        "id, hash, is_admin, tenant, name, models, requests_per_minute, tokens_per_minute, tokens_per_day, " +
        "max_concurrent, priority, expires_at, revoked, created_at, last_used_at, replaced_by, guard, requests_per_hour, tokens_per_hour, retires_at";

    public async Task InsertAsync(ApiKeyRecord key, CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        await connection.ExecuteAsync(
            $"INSERT INTO api_keys ({Columns}) VALUES (@id, @hash, @admin, @tenant, @name, @models, @rpm, @tpm, @tpd, @conc, @prio, @exp, @rev, @created, NULL, NULL, @guard, @rph, @tph, @retires)",
            ct,
            ("@id", key.Id), ("@hash", key.Hash), ("@admin", key.IsAdmin ? 1L : 0L), ("@tenant", key.Tenant), ("@name", key.Name),
            ("@models", string.Join(',', key.Models)), ("@rpm", key.Limits.RequestsPerMinute), ("@tpm", key.Limits.TokensPerMinute),
            ("@tpd", key.Limits.TokensPerDay), ("@conc", key.Limits.MaxConcurrent), ("@prio", (long)key.Priority),
            ("@exp", key.ExpiresAt?.ToUnixTimeMilliseconds()), ("@rev", key.Revoked ? 1L : 0L),
            ("@created", key.CreatedAt.ToUnixTimeMilliseconds()), ("@guard", key.Guard is { } guard ? GuardPolicyNames.Name(guard) : null),
            ("@rph", key.Limits.RequestsPerHour), ("@tph", key.Limits.TokensPerHour), ("@retires", key.RetiresAt?.ToUnixTimeMilliseconds()));
    }

    public async Task<ApiKeyRecord?> FindAsync(string id, CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        await using var command = connection.Command($"SELECT {Columns} FROM api_keys WHERE id = @id", ("@id", id));
        await using var reader = await command.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? Read(reader) : null;
    }

    public async Task<IReadOnlyList<ApiKeyRecord>> ListAsync(CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        await using var command = connection.Command($"SELECT {Columns} FROM api_keys ORDER BY created_at, id");
        await using var reader = await command.ExecuteReaderAsync(ct);
        var keys = new List<ApiKeyRecord>();
        while (await reader.ReadAsync(ct)) keys.Add(Read(reader));
        return keys;
    }

    public async Task<bool> AnyAdminKeyAsync(CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        await using var command = connection.Command("SELECT COUNT(*) FROM api_keys WHERE is_admin = 1 AND revoked = 0");
        return Convert.ToInt64(await command.ExecuteScalarAsync(ct)) > 0;
    }

    /// <summary>Marks a key revoked; false when no such key exists.</summary>
    public async Task<bool> RevokeAsync(string id, string? replacedBy, CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        return await connection.ExecuteAsync(
            "UPDATE api_keys SET revoked = 1, replaced_by = COALESCE(@by, replaced_by) WHERE id = @id", ct,
            ("@id", id), ("@by", replacedBy)) > 0;
    }

    /// <summary>
    /// Marks a key replaced by <paramref name="replacedBy"/>, working until <paramref name="retiresAt"/>.
    /// False when no such key is active and not already being retired (a concurrent rotation won).
    /// </summary>
    public async Task<bool> RetireAsync(string id, string replacedBy, DateTimeOffset retiresAt, CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        return await connection.ExecuteAsync(
            "UPDATE api_keys SET replaced_by = @by, retires_at = @at WHERE id = @id AND revoked = 0 AND retires_at IS NULL", ct,
            ("@id", id), ("@by", replacedBy), ("@at", retiresAt.ToUnixTimeMilliseconds())) > 0;
    }

    /// <summary>Moves keys' last-used times forward (never back: another replica may have written a later one), in the caller's transaction.</summary>
    internal static async Task TouchAsync(DbConnection connection, DbTransaction tx, IEnumerable<KeyValuePair<string, DateTimeOffset>> lastUsed, CancellationToken ct)
    {
        await using var update = connection.Command(
            "UPDATE api_keys SET last_used_at = @at WHERE id = @id AND (last_used_at IS NULL OR last_used_at < @at)", ("@id", null), ("@at", null));
        update.Transaction = tx;
        foreach (var (id, at) in lastUsed)
        {
            update.Bind(id, at.ToUnixTimeMilliseconds());
            await update.ExecuteNonQueryAsync(ct);
        }
    }

    private static ApiKeyRecord Read(DbDataReader r) => new(
        Id: r.GetString(0),
        Hash: r.GetString(1),
        IsAdmin: r.GetInt64(2) != 0,
        Tenant: r.GetString(3),
        Name: r.GetString(4),
        Models: r.GetString(5).Split(',', StringSplitOptions.RemoveEmptyEntries),
        Limits: new KeyLimits(r.GetInt64(6), r.GetInt64(7), r.GetInt64(8), r.GetInt64(9), RequestsPerHour: r.GetInt64(17), TokensPerHour: r.GetInt64(18)),
        Priority: (int)r.GetInt64(10),
        ExpiresAt: r.NullableInt64(11) is { } exp ? DateTimeOffset.FromUnixTimeMilliseconds(exp) : null,
        Revoked: r.GetInt64(12) != 0,
        CreatedAt: DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(13)),
        LastUsedAt: r.NullableInt64(14) is { } used ? DateTimeOffset.FromUnixTimeMilliseconds(used) : null,
        ReplacedBy: r.NullableString(15))
    {
        Guard = r.NullableString(16) is { } guard ? GuardPolicyNames.Parse(guard, "api_keys.guard") : null,
        RetiresAt = r.NullableInt64(19) is { } retires ? DateTimeOffset.FromUnixTimeMilliseconds(retires) : null,
    };
}
