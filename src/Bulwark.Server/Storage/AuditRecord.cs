namespace Bulwark.Server.Storage;

/// <summary>
/// One audit event: a request (kind <c>request</c>) or an admin action (<c>key.created</c>,
/// <c>key.revoked</c>, <c>key.rotated</c>, <c>ip.blocked</c>, <c>ip.unblocked</c>, <c>request.cancelled</c>,
/// <c>log.level</c>, <c>model.loaded</c>, <c>model.unloaded</c>, <c>model.current</c>, <c>model.rollback</c>,
/// <c>model.load_refused</c>, <c>model.tampered</c>, <c>model.quantized</c>, <c>model.converted</c>,
/// <c>model.checked</c>, <c>model.gate_override</c>). Never holds a key, and holds prompt or
/// completion text (in <see cref="Detail"/>) only for tenants an operator opted in.
/// </summary>
public sealed record AuditRecord
{
    /// <summary>
    /// Unique across replicas and restarts (<see cref="UniqueIds"/>): a record written again, as a replay
    /// of the spool after a crash may, is stored once. Null on records written before ids existed.
    /// </summary>
    public string? Id { get; init; } = UniqueIds.Next();
    public required DateTimeOffset At { get; init; }
    public required string Kind { get; init; }
    public string? RequestId { get; init; }
    public string? KeyId { get; init; }
    public string? Tenant { get; init; }
    public string? Model { get; init; }
    public string? ClientIp { get; init; }
    public string? Route { get; init; }
    public int? Status { get; init; }
    public long? PromptTokens { get; init; }
    public long? CompletionTokens { get; init; }
    public long? LatencyMicroseconds { get; init; }
    /// <summary>Why the request was refused (<c>missing_credentials</c>, <c>invalid_key</c>, <c>rate_limit:tokens</c>, ...).</summary>
    public string? Reason { get; init; }
    /// <summary>
    /// The input guard's verdict on a request it scanned, as compact JSON:
    /// <c>{"decision":"flag","score":0.4123,"rules":["instruction-override"]}</c>. Rule ids and a
    /// score only, never text (the text goes to <see cref="Detail"/> only for opted-in tenants).
    /// </summary>
    public string? Guard { get; init; }
    /// <summary>The upstream endpoint (scheme://host:port) that served a forwarded request; null for the embedded engine.</summary>
    public string? Upstream { get; init; }
    /// <summary>Admin action subject, or opted-in content.</summary>
    public string? Detail { get; init; }

    public const string RequestKind = "request";
}
