using Bulwark.Server;
using Bulwark.Server.Audit;
using Bulwark.Server.Storage;

namespace Bulwark.Cli.Commands;

/// <summary>
/// Writes admin actions taken from the command line into the same audit table the server
/// writes: SQLite in the data directory, or PostgreSQL when <c>Bulwark:Storage:Postgres</c> is set
/// (read like <c>keys</c> and <c>admin</c> read it: appsettings.json, then <c>Bulwark__*</c> variables).
/// </summary>
internal static class CliAudit
{
    public static async Task WriteAsync(DataDirectory data, string kind, string model, string? detail)
    {
        var options = SecurityStoreOptions.StorageOf(SecurityStoreOptions.ReadConfiguration());
        await using var storage = await SecurityStorage.OpenAsync(data, options);
        await storage.Audit.WriteAsync([new AuditRecord
        {
            At = DateTimeOffset.UtcNow,
            Kind = kind,
            Model = model,
            Route = "cli",
            Detail = detail,
        }]);
    }
}
