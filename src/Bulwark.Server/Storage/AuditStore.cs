using System.Data.Common;
using Bulwark.Server.Audit;

namespace Bulwark.Server.Storage;

/// <summary>Per key per UTC day totals, as kept in <c>usage_daily</c>.</summary>
public sealed record DailyUsage(string KeyId, string Day, long Requests, long PromptTokens, long CompletionTokens);

/// <summary>The <c>audit_events</c> and <c>usage_daily</c> tables, written in batches.</summary>
public sealed class AuditStore(Database database)
{
    public async Task WriteAsync(IReadOnlyList<AuditRecord> records, CancellationToken ct = default)
    {
        if (records.Count == 0) return;
        await using var connection = await database.OpenAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        foreach (var r in records)
        {
            await using var insert = connection.Command(
                "INSERT INTO audit_events (at, kind, request_id, key_id, tenant, model, client_ip, route, status, prompt_tokens, completion_tokens, latency_us, reason, detail, guard) " +
                "VALUES (@at, @kind, @rid, @key, @tenant, @model, @ip, @route, @status, @pt, @ct, @lat, @reason, @detail, @guard)",
                ("@at", r.At.ToUnixTimeMilliseconds()), ("@kind", r.Kind), ("@rid", r.RequestId), ("@key", r.KeyId), ("@tenant", r.Tenant),
                ("@model", Clean(r.Model)), ("@ip", r.ClientIp), ("@route", Clean(r.Route)), ("@status", (long?)r.Status), ("@pt", r.PromptTokens),
                ("@ct", r.CompletionTokens), ("@lat", r.LatencyMicroseconds), ("@reason", Clean(r.Reason)), ("@detail", Clean(r.Detail)), ("@guard", r.Guard));
            insert.Transaction = tx;
            await insert.ExecuteNonQueryAsync(ct);

            if (r.Kind != AuditRecord.RequestKind || r.KeyId is null || r.Reason is not null) continue;
            await using var usage = connection.Command(
                "INSERT INTO usage_daily (key_id, day, requests, prompt_tokens, completion_tokens) VALUES (@key, @day, 1, @pt, @ct) " +
                "ON CONFLICT (key_id, day) DO UPDATE SET requests = usage_daily.requests + 1, " +
                "prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens",
                ("@key", r.KeyId), ("@day", r.At.UtcDateTime.ToString("yyyy-MM-dd")), ("@pt", r.PromptTokens ?? 0), ("@ct", r.CompletionTokens ?? 0));
            usage.Transaction = tx;
            await usage.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
    }

    // Fields a client or operator typed (a model name, a reason, opted-in prompt text) may hold a
    // pasted key; the audit log is kept long and read widely, so it is masked here, off the request path.
    private static string? Clean(string? text) => text is null ? null : SecretRedactor.Redact(text);

    /// <summary>The newest <paramref name="limit"/> events, newest first (optionally of one kind).</summary>
    public async Task<IReadOnlyList<AuditRecord>> ReadRecentAsync(int limit, string? kind = null, CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        await using var command = connection.Command(
            "SELECT at, kind, request_id, key_id, tenant, model, client_ip, route, status, prompt_tokens, completion_tokens, latency_us, reason, detail, guard " +
            (kind is null ? "FROM audit_events " : "FROM audit_events WHERE kind = @kind ") + "ORDER BY seq DESC LIMIT @limit",
            kind is null ? [("@limit", (long)limit)] : [("@kind", kind), ("@limit", (long)limit)]);
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
    };
}
