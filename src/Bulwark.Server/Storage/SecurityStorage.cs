namespace Bulwark.Server.Storage;

/// <summary>Where the security store lives: <c>Bulwark:Storage</c> in configuration.</summary>
public sealed class StorageOptions
{
    /// <summary>PostgreSQL connection string; when empty the store is SQLite in the data directory.</summary>
    public string? Postgres { get; set; }

    /// <summary>PostgreSQL schema holding Bulwark's tables.</summary>
    public string Schema { get; set; } = "bulwark";
}

/// <summary>The opened security store: one database and the tables' stores over it.</summary>
public sealed class SecurityStorage : IAsyncDisposable
{
    public const string SqliteFileName = "bulwark.db";

    private SecurityStorage(Database database)
    {
        Database = database;
        Keys = new KeyStore(database);
        IpBlocks = new IpBlockStore(database);
        Incidents = new IncidentEventStore(database);
        Audit = new AuditStore(database);
        ReplicaRequests = new ReplicaRequestStore(database);
    }

    public Database Database { get; }
    public KeyStore Keys { get; }
    public IpBlockStore IpBlocks { get; }
    public IncidentEventStore Incidents { get; }
    public AuditStore Audit { get; }
    public ReplicaRequestStore ReplicaRequests { get; }

    /// <summary>Opens (creating and migrating as needed) the store the options point at.</summary>
    /// <exception cref="DataDirectoryException">The SQLite file cannot be created or written (a full disk).</exception>
    public static async Task<SecurityStorage> OpenAsync(DataDirectory dataDirectory, StorageOptions options, CancellationToken ct = default)
    {
        Database database;
        if (!string.IsNullOrWhiteSpace(options.Postgres))
        {
            database = Database.Postgres(options.Postgres, options.Schema);
            await Migrations.ApplyAsync(database, ct);
            return new SecurityStorage(database);
        }
        var path = Path.Combine(dataDirectory.StatePath, SqliteFileName);
        try
        {
            dataDirectory.EnsureCreated();
            database = Database.Sqlite(path);
            await Migrations.ApplyAsync(database, ct);
        }
        catch (Exception e) when (DataDirectoryException.IsDiskFailure(e))
        {
            throw new DataDirectoryException(path, e);
        }
        return new SecurityStorage(database);
    }

    public ValueTask DisposeAsync() => Database.DisposeAsync();
}
