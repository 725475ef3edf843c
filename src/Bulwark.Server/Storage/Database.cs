using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Bulwark.Server.Storage;

/// <summary>
/// A connection source for the security store: a SQLite file in the data directory (WAL, so the
/// CLI and a running server can share it) or a PostgreSQL schema shared by every replica.
/// </summary>
public sealed class Database : IAsyncDisposable
{
    private readonly Func<CancellationToken, ValueTask<DbConnection>> _open;
    private readonly IAsyncDisposable? _owned;

    private Database(SqlDialect dialect, string description, Func<CancellationToken, ValueTask<DbConnection>> open, IAsyncDisposable? owned)
    {
        Dialect = dialect;
        Description = description;
        _open = open;
        _owned = owned;
    }

    public SqlDialect Dialect { get; }

    /// <summary>Where the data lives, for messages (never contains a password).</summary>
    public string Description { get; }

    /// <summary>Name of the PostgreSQL schema, or null for SQLite.</summary>
    public string? Schema { get; private init; }

    public static Database Sqlite(string filePath)
    {
        var connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = filePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
        }.ToString();
        return new Database(SqlDialect.Sqlite, filePath, async ct =>
        {
            var connection = new SqliteConnection(connectionString);
            await connection.OpenAsync(ct);
            // Another process (the CLI, a second server) may hold the write lock for a moment.
            using var pragma = connection.CreateCommand();
            pragma.CommandText = "PRAGMA busy_timeout=5000;";
            await pragma.ExecuteNonQueryAsync(ct);
            return connection;
        }, null);
    }

    public static Database Postgres(string connectionString, string schema)
    {
        if (!IsPlainIdentifier(schema))
            throw new ArgumentException($"PostgreSQL schema must be letters, digits and underscores (at most 63); got '{schema}'", nameof(schema));
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { SearchPath = schema };
        var source = NpgsqlDataSource.Create(builder.ConnectionString);
        return new Database(SqlDialect.Postgres, $"postgres://{builder.Host}:{builder.Port}/{builder.Database} schema {schema}",
            async ct => await source.OpenConnectionAsync(ct), source)
        { Schema = schema };
    }

    public ValueTask<DbConnection> OpenAsync(CancellationToken ct = default) => _open(ct);

    public ValueTask DisposeAsync() => _owned?.DisposeAsync() ?? ValueTask.CompletedTask;

    internal static bool IsPlainIdentifier(string name) =>
        name.Length is > 0 and <= 63 && !char.IsAsciiDigit(name[0]) &&
        name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');
}
