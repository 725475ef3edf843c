using System.CommandLine;
using Bulwark.Server;
using Bulwark.Server.Incidents;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Microsoft.Extensions.Configuration;

namespace Bulwark.Cli.Commands;

/// <summary>
/// How <c>bulwark keys</c> and <c>bulwark admin</c> find the same security store and HMAC secret as
/// <c>serve</c>: <c>--data-dir</c> (SQLite in its state folder and <c>state/hmac.secret</c>), or
/// <c>--database</c> / <c>Bulwark__Storage__Postgres</c> for a shared PostgreSQL, with
/// <c>Bulwark__Security__HmacSecret</c> then required so every replica hashes keys alike.
/// Configuration is read like the server reads it: <c>appsettings.json</c> in the working
/// directory, then <c>Bulwark__*</c> environment variables, then the flags.
/// </summary>
internal sealed class SecurityStoreOptions
{
    public Option<string?> DataDir { get; } = CommonOptions.DataDir();

    public Option<string?> Database { get; } = new("--database")
    {
        Description = "PostgreSQL connection string of a shared key store (default: Bulwark:Storage:Postgres, else SQLite in the data directory).",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(DataDir);
        command.Options.Add(Database);
    }

    /// <summary>Configuration as the server reads it, without flags: <c>appsettings.json</c> in the working directory, then <c>Bulwark__*</c> environment variables.</summary>
    public static IConfiguration ReadConfiguration() => new ConfigurationBuilder()
        .AddJsonFile(Path.Combine(Environment.CurrentDirectory, "appsettings.json"), optional: true)
        .AddEnvironmentVariables()
        .Build();

    /// <summary>Where the store lives (<c>Bulwark:Storage</c>).</summary>
    public static StorageOptions StorageOf(IConfiguration configuration) =>
        configuration.GetSection("Bulwark:Storage").Get<StorageOptions>() ?? new StorageOptions();

    /// <summary>The opened store and the services that change it, as the server builds them.</summary>
    public async Task<SecurityStore> OpenAsync(ParseResult result, CancellationToken ct)
    {
        var configuration = ReadConfiguration();
        var storage = StorageOf(configuration);
        var security = configuration.GetSection("Bulwark:Security").Get<SecurityOptions>() ?? new SecurityOptions();
        if (result.GetValue(Database) is { Length: > 0 } database) storage.Postgres = database;
        if (!string.IsNullOrWhiteSpace(storage.Postgres) && string.IsNullOrWhiteSpace(security.HmacSecret))
            throw new InvalidOperationException(
                "a PostgreSQL key store needs the servers' HMAC secret: set Bulwark__Security__HmacSecret (base64, at least 32 bytes)");

        var dataDirectory = DataDirectory.Resolve(result.GetValue(DataDir)).EnsureCreated();
        var opened = await SecurityStorage.OpenAsync(dataDirectory, storage, ct);
        var secret = ServerSecret.Load(security.HmacSecret, dataDirectory.StatePath);
        var hasher = new ApiKeyHasher(secret);
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(secret);
        return new SecurityStore(opened, new KeyIssuer(opened, hasher, TimeProvider.System), new IncidentControls(opened, TimeProvider.System));
    }
}

/// <summary>An opened security store for one CLI command.</summary>
internal sealed record SecurityStore(SecurityStorage Storage, KeyIssuer Keys, IncidentControls Incidents) : IAsyncDisposable
{
    /// <summary>Who the audit log names as the actor of a CLI change.</summary>
    public static string Actor => $"cli ({Environment.UserName}@{Environment.MachineName})";

    public ValueTask DisposeAsync() => Storage.DisposeAsync();
}
