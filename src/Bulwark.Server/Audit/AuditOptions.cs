namespace Bulwark.Server.Audit;

/// <summary><c>Bulwark:Audit:WhenUnrecorded</c>: serve requests whose audit records are lost (counted), or refuse them.</summary>
public enum UnrecordedPolicy
{
    /// <summary>Requests are served; lost records are counted (<c>bulwark_audit_dropped_records_total</c>) and logged.</summary>
    Serve,

    /// <summary>
    /// While records are being lost, new inference requests are refused with 503 <c>audit_unavailable</c> and
    /// <c>/ready</c> fails, until a record reaches the store or the spool again: for deployments where a request
    /// that cannot be audited must not be served.
    /// </summary>
    Refuse,
}

/// <summary><c>Bulwark:Audit</c> in configuration.</summary>
public sealed class AuditOptions
{
    /// <summary>Longest <see cref="FlushInterval"/> accepted: records must reach the store while they still matter to an operator.</summary>
    public static readonly TimeSpan MaxFlushInterval = TimeSpan.FromSeconds(10);

    /// <summary>Tenants whose prompt and completion text may be stored in audit records. Empty by default.</summary>
    public string[] ContentTenants { get; set; } = [];

    /// <summary>Most records waiting to be written; beyond it new records are dropped and counted.</summary>
    public int QueueCapacity { get; set; } = 100_000;

    /// <summary>Most records written in one transaction.</summary>
    public int BatchSize { get; set; } = 500;

    /// <summary>
    /// How long the writer gathers records after the first one arrives before it writes them, in one
    /// transaction. Zero writes as soon as records arrive (a transaction per request under light load).
    /// </summary>
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Most bytes of audit records kept in the spool (<c>state/audit.spool</c>) while the store refuses
    /// them (about 2 000 records per MiB); beyond it new ones are dropped and counted. 0 turns the spool off.
    /// </summary>
    public long SpoolLimitBytes { get; set; } = 256L << 20;

    /// <summary>What the server does while audit records are being lost (neither the store nor the spool takes them).</summary>
    public UnrecordedPolicy WhenUnrecorded { get; set; } = UnrecordedPolicy.Serve;

    /// <summary>Every problem with these options, naming the setting and the value; empty when valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (QueueCapacity < 1) problems.Add($"Bulwark:Audit:QueueCapacity must be at least 1; got {QueueCapacity}");
        if (BatchSize < 1) problems.Add($"Bulwark:Audit:BatchSize must be at least 1; got {BatchSize}");
        if (SpoolLimitBytes < 0) problems.Add($"Bulwark:Audit:SpoolLimitBytes must be 0 (no spool) or more; got {SpoolLimitBytes}");
        if (FlushInterval < TimeSpan.Zero || FlushInterval > MaxFlushInterval)
            problems.Add($"Bulwark:Audit:FlushInterval must be between 00:00:00 and {MaxFlushInterval:c}; got {FlushInterval:c}");
        return problems;
    }
}
