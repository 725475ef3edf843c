namespace Bulwark.Server.Audit;

/// <summary><c>Bulwark:Audit</c> in configuration.</summary>
public sealed class AuditOptions
{
    /// <summary>Tenants whose prompt and completion text may be stored in audit records. Empty by default.</summary>
    public string[] ContentTenants { get; set; } = [];

    /// <summary>Most records waiting to be written; beyond it new records are dropped and counted.</summary>
    public int QueueCapacity { get; set; } = 100_000;

    /// <summary>Most records written in one transaction.</summary>
    public int BatchSize { get; set; } = 500;
}
