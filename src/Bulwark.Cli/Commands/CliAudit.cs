using Bulwark.Server;
using Bulwark.Server.Audit;
using Bulwark.Server.Storage;

namespace Bulwark.Cli.Commands;

/// <summary>
/// Writes admin actions taken from the command line into the same audit table the server
/// writes: SQLite in the data directory, or PostgreSQL when <c>Bulwark__Storage__Postgres</c> is set
/// (the same setting <c>serve</c> reads).
/// </summary>
internal static class CliAudit
{
    public static async Task WriteAsync(DataDirectory data, string kind, string model, string? detail)
    {
        var options = new StorageOptions
        {
            Postgres = Environment.GetEnvironmentVariable("Bulwark__Storage__Postgres"),
            Schema = Environment.GetEnvironmentVariable("Bulwark__Storage__Schema") ?? new StorageOptions().Schema,
        };
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
