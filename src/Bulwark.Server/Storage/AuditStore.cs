using System.Data.Common;
using Bulwark.Server.Audit;
using Bulwark.Server.Redaction;

namespace Bulwark.Server.Storage;

/// <summary>Per key per UTC day totals, as kept in <c>usage_daily</c>.</summary>
public sealed record DailyUsage(string KeyId, string Day, long Requests, long PromptTokens, long CompletionTokens);

/// <summary>Which audit events to read: each field that is set must match exactly.</summary>
public sealed record AuditQuery
{
    public string? Kind { get; init; }
    public string? KeyId { get; init; }
    public string? Tenant { get; init; }
    public string? ClientIp { get; init; }
    public int? Status { get; init; }
    /// <summary>The request id (<c>x-request-id</c>) the record is about.</summary>
    public string? RequestId { get; init; }
    /// <summary>True: only requests the input guard scanned (with a verdict).</summary>
    public bool GuardedOnly { get; init; }
}

/// <summary>The <c>audit_events</c> and <c>usage_daily</c> tables, written in batches.</summary>
public sealed class AuditStore(Database database)
{
    // A record already stored (same id) is skipped, and then neither counted in usage_daily again.
    private const string InsertEvent =
        "INSERT INTO audit_events (record_id, at, kind, request_id, key_id, tenant, model, client_ip, route, status, prompt_tokens, completion_tokens, latency_us, reason, detail, guard, upstream) " +
        "VALUES (@id, @at, @kind, @rid, @key, @tenant, @model, @ip, @route, @status, @pt, @ct, @lat, @reason, @detail, @guard, @upstream) " +
        "ON CONFLICT (record_id) DO NOTHING";

    private const string AddUsage =
        "INSERT INTO usage_daily (key_id, day, requests, prompt_tokens, completion_tokens) VALUES (@key, @day, @n, @pt, @ct) " +
        "ON CONFLICT (key_id, day) DO UPDATE SET requests = usage_daily.requests + excluded.requests, " +
        "prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens";

    public Task<int> WriteAsync(IReadOnlyList<AuditRecord> records, CancellationToken ct = default) => WriteAsync(records, [], ct);

    /// <summary>
    /// Writes <paramref name="records"/>, adds the admitted requests among them to <c>usage_daily</c>, and
    /// moves keys' last-used times forward (<paramref name="lastUsed"/>), all in one transaction.
    /// Idempotent per record: one whose <see cref="AuditRecord.Id"/> is already stored is skipped.
    /// </summary>
    /// <returns>The records stored now (those not stored before).</returns>
    public async Task<int> WriteAsync(IReadOnlyList<AuditRecord> records, IReadOnlyCollection<KeyValuePair<string, DateTimeOffset>> lastUsed, CancellationToken ct = default)
    {
        if (records.Count == 0 && lastUsed.Count == 0) return 0;
        var stored = new List<AuditRecord>(records.Count);
        await using var connection = await database.OpenAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        // Perf: one command per statement for the whole batch, parameters re-bound per row, so SQLite
        // parses each statement once per batch rather than once per record.
        await using (var insert = connection.Command(InsertEvent, ("@id", null), ("@at", null), ("@kind", null), ("@rid", null), ("@key", null), ("@tenant", null),
                         ("@model", null), ("@ip", null), ("@route", null), ("@status", null), ("@pt", null), ("@ct", null), ("@lat", null),
                         ("@reason", null), ("@detail", null), ("@guard", null), ("@upstream", null)))
        {
            insert.Transaction = tx;
            foreach (var r in records)
            {
                insert.Bind(r.Id, r.At.ToUnixTimeMilliseconds(), r.Kind, r.RequestId, r.KeyId, r.Tenant, Clean(r.Model), r.ClientIp, Clean(r.Route), (long?)r.Status,
                    r.PromptTokens, r.CompletionTokens, r.LatencyMicroseconds, Clean(r.Reason), Clean(r.Detail), r.Guard, Clean(r.Upstream));
                if (await insert.ExecuteNonQueryAsync(ct) > 0) stored.Add(r);
            }
        }
        await using (var usage = connection.Command(AddUsage, ("@key", null), ("@day", null), ("@n", null), ("@pt", null), ("@ct", null)))
        {
            usage.Transaction = tx;
            foreach (var ((key, day), total) in DailyTotals(stored))
            {
                usage.Bind(key, day, total.Requests, total.PromptTokens, total.CompletionTokens);
                await usage.ExecuteNonQueryAsync(ct);
            }
        }
        await KeyStore.TouchAsync(connection, tx, lastUsed, ct);
        await tx.CommitAsync(ct);
        return stored.Count;
    }

    /// <summary>Admitted requests (a key, no refusal) summed per key and UTC day.</summary>
    internal static Dictionary<(string Key, string Day), (long Requests, long PromptTokens, long CompletionTokens)> DailyTotals(IEnumerable<AuditRecord> records)
    {
        var totals = new Dictionary<(string, string), (long, long, long)>();
        foreach (var r in records)
        {
            if (r.Kind != AuditRecord.RequestKind || r.KeyId is null || r.Reason is not null) continue;
            var day = (r.KeyId, r.At.UtcDateTime.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture));
            var (n, pt, ct) = totals.GetValueOrDefault(day);
            totals[day] = (n + 1, pt + (r.PromptTokens ?? 0), ct + (r.CompletionTokens ?? 0));
        }
        return totals;
    }

    // Fields a client or operator typed (a model name, a reason, opted-in prompt text) may hold a
    // pasted key; the audit log is kept long and read widely, so it is masked here, off the request path.
    private static string? Clean(string? text) => text is null ? null : SecretRedactor.Redact(text);

    /// <summary>The newest <paramref name="limit"/> events, newest first (optionally of one kind).</summary>
    public Task<IReadOnlyList<AuditRecord>> ReadRecentAsync(int limit, string? kind = null, CancellationToken ct = default) =>
        SearchAsync(new AuditQuery { Kind = kind }, limit, 0, ct);

    /// <summary>The events <paramref name="query"/> matches, newest first: <paramref name="limit"/> of them after skipping <paramref name="offset"/>.</summary>
    public async Task<IReadOnlyList<AuditRecord>> SearchAsync(AuditQuery query, int limit, int offset = 0, CancellationToken ct = default)
    {
        var where = new List<string>();
        var parameters = new List<(string, object?)> { ("@limit", (long)limit), ("@offset", (long)offset) };
        void Equal(string column, string? value)
        {
            if (value is null) return;
            where.Add($"{column} = @{column}");
            parameters.Add(("@" + column, value));
        }
        Equal("kind", query.Kind);
        Equal("key_id", query.KeyId);
        Equal("tenant", query.Tenant);
        Equal("client_ip", query.ClientIp);
        Equal("request_id", query.RequestId);
        if (query.Status is { } status)
        {
            where.Add("status = @status");
            parameters.Add(("@status", (long)status));
        }
        if (query.GuardedOnly) where.Add("guard IS NOT NULL");
        await using var connection = await database.OpenAsync(ct);
        await using var command = connection.Command(
            "SELECT at, kind, request_id, key_id, tenant, model, client_ip, route, status, prompt_tokens, completion_tokens, latency_us, reason, detail, guard, upstream, record_id " +
            "FROM audit_events " + (where.Count == 0 ? "" : "WHERE " + string.Join(" AND ", where) + " ") + "ORDER BY seq DESC LIMIT @limit OFFSET @offset",
            [.. parameters]);
        await using var reader = await command.ExecuteReaderAsync(ct);
        var records = new List<AuditRecord>();
        while (await reader.ReadAsync(ct)) records.Add(Read(reader));
        return records;
    }

    public async Task<DailyUsage?> UsageAsync(string keyId, string day, CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        await using var command = connection.Command(
            "SELECT requests, prompt_tokens, completion_tokens FROM usage_daily WHERE key_id = @key AND day = @day", ("@key", keyId), ("@day", day));
        await using var reader = await command.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? new DailyUsage(keyId, day, reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2)) : null;
    }

    /// <summary>Every key's totals for one UTC day (<c>yyyy-MM-dd</c>), by key id.</summary>
    public async Task<IReadOnlyDictionary<string, DailyUsage>> UsageOnAsync(string day, CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        await using var command = connection.Command(
            "SELECT key_id, requests, prompt_tokens, completion_tokens FROM usage_daily WHERE day = @day", ("@day", day));
        await using var reader = await command.ExecuteReaderAsync(ct);
        var usage = new Dictionary<string, DailyUsage>(StringComparer.Ordinal);
        while (await reader.ReadAsync(ct))
            usage[reader.GetString(0)] = new DailyUsage(reader.GetString(0), day, reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3));
        return usage;
    }

    private static AuditRecord Read(DbDataReader r) => new()
    {
        At = DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(0)),
        Kind = r.GetString(1),
        RequestId = r.NullableString(2),
        KeyId = r.NullableString(3),
        Tenant = r.NullableString(4),
        Model = r.NullableString(5),
        ClientIp = r.NullableString(6),
        Route = r.NullableString(7),
        Status = r.NullableInt64(8) is { } s ? (int)s : null,
        PromptTokens = r.NullableInt64(9),
        CompletionTokens = r.NullableInt64(10),
        LatencyMicroseconds = r.NullableInt64(11),
        Reason = r.NullableString(12),
        Detail = r.NullableString(13),
        Guard = r.NullableString(14),
        Upstream = r.NullableString(15),
        Id = r.NullableString(16),
    };
}
