using System.Data.Common;
using Bulwark.Server.Requests;
using Bulwark.Server.Storage;

namespace Bulwark.Server.Tests.Storage;

public class MigrationsTests
{
    [Fact]
    public async Task SqliteAndPostgresGetTheSameTablesAndColumns()
    {
        var (sqlite, _) = await TestDatabases.OpenAsync(TestDatabases.Sqlite);
        var (postgres, _) = await TestDatabases.OpenAsync(TestDatabases.Postgres);
        await using (sqlite)
        await using (postgres)
        {
            var fromSqlite = await SqliteColumnsAsync(sqlite.Database);
            var fromPostgres = await PostgresColumnsAsync(postgres.Database);
            Assert.Equal(fromSqlite, fromPostgres);
            Assert.Contains("api_keys.hash", fromSqlite);
            Assert.Contains("usage_daily.completion_tokens", fromSqlite);
            Assert.Contains("audit_events.reason", fromSqlite);
        }
    }

    [Fact]
    public async Task SqliteStoreUsesWriteAheadLogging()
    {
        var (storage, _) = await TestDatabases.OpenAsync(TestDatabases.Sqlite);
        await using (storage)
        {
            await using var connection = await storage.Database.OpenAsync();
            await using var command = connection.Command("PRAGMA journal_mode;");
            Assert.Equal("wal", (string?)await command.ExecuteScalarAsync());
        }
    }

    /// <summary>Replicas started together on an empty store (a fresh deployment) must all come up.</summary>
    [Theory]
    [InlineData(TestDatabases.Sqlite)]
    [InlineData(TestDatabases.Postgres)]
    public async Task SeveralProcessesMigratingAFreshStoreAtOnceAllSucceed(string kind)
    {
        var file = Path.Combine(Bulwark.Testing.Fixtures.NewTempDirectory("migrate"), "bulwark.db");
        var schema = TestDatabases.NewSchemaName();
        // One Database (connection pool) per "process".
        var databases = Enumerable.Range(0, 4).Select(_ => kind == TestDatabases.Sqlite
            ? Database.Sqlite(file)
            : Database.Postgres(TestDatabases.PostgresConnectionString, schema)).ToList();
        try
        {
            using var go = new ManualResetEventSlim();
            var runs = databases.Select(d => Task.Run(async () =>
            {
                go.Wait();
                await Migrations.ApplyAsync(d);
            })).ToList();
            go.Set();
            await Task.WhenAll(runs);

            await using var connection = await databases[0].OpenAsync();
            await using var command = connection.Command("SELECT COUNT(*) FROM schema_migrations");
            Assert.Equal((long)Migrations.Latest, Convert.ToInt64(await command.ExecuteScalarAsync()));
        }
        finally
        {
            foreach (var d in databases) await d.DisposeAsync();
        }
    }

    [Theory]
    [InlineData(TestDatabases.Sqlite)]
    [InlineData(TestDatabases.Postgres)]
    public async Task ApplyingMigrationsTwiceRecordsEachVersionOnce(string kind)
    {
        var (storage, _) = await TestDatabases.OpenAsync(kind);
        await using (storage)
        {
            await Migrations.ApplyAsync(storage.Database);
            await using var connection = await storage.Database.OpenAsync();
            await using var command = connection.Command("SELECT COUNT(*) FROM schema_migrations");
            Assert.Equal((long)Migrations.Latest, Convert.ToInt64(await command.ExecuteScalarAsync()));
        }
    }

    /// <summary>
    /// A store left by the release before the hourly limits and rotation grace (schema version 4), holding
    /// a key, is migrated in place: the key keeps its limits, reads "no hourly limit" and "not being
    /// retired", and new keys store theirs.
    /// </summary>
    [Theory]
    [InlineData(TestDatabases.Sqlite)]
    [InlineData(TestDatabases.Postgres)]
    public async Task AStoreFromBeforeTheHourlyLimitsIsMigratedWithItsKeysIntact(string kind)
    {
        await using var database = kind == TestDatabases.Sqlite
            ? Database.Sqlite(Path.Combine(Bulwark.Testing.Fixtures.NewTempDirectory("migrate"), "bulwark.db"))
            : Database.Postgres(TestDatabases.PostgresConnectionString, TestDatabases.NewSchemaName());
        await Migrations.ApplyAsync(database, through: 4);
        await using (var connection = await database.OpenAsync())
        {
            // The row as that release's KeyStore wrote it.
            await connection.ExecuteAsync(
                "INSERT INTO api_keys (id, hash, is_admin, tenant, name, models, requests_per_minute, tokens_per_minute, tokens_per_day, " +
                "max_concurrent, priority, expires_at, revoked, created_at, last_used_at, replaced_by, guard) " +
                "VALUES ('oldkey000001', 'aGFzaA==', 0, 't', 'old', 'm1', 5, 6, 7, 8, 2, NULL, 0, 1700000000000, NULL, NULL, 'flag')", default);
        }

        await Migrations.ApplyAsync(database);

        var keys = new KeyStore(database);
        var old = await keys.FindAsync("oldkey000001");
        Assert.NotNull(old);
        Assert.Equal(new KeyLimits(5, 6, 7, 8), old.Limits);
        Assert.Equal(GuardPolicy.Flag, old.Guard);
        Assert.Null(old.RetiresAt);
        Assert.False(old.IsRetired(DateTimeOffset.UtcNow));
        var limits = new KeyLimits(1, 2, 3, 4, RequestsPerHour: 50, TokensPerHour: 9000);
        await keys.InsertAsync(old with { Id = "newkey000001", Limits = limits });
        Assert.Equal(limits, (await keys.FindAsync("newkey000001"))!.Limits);
        await using var after = await database.OpenAsync();
        await using var count = after.Command("SELECT COUNT(*) FROM schema_migrations");
        Assert.Equal((long)Migrations.Latest, Convert.ToInt64(await count.ExecuteScalarAsync()));
    }

    private static async Task<SortedSet<string>> SqliteColumnsAsync(Database database)
    {
        var columns = new SortedSet<string>(StringComparer.Ordinal);
        await using var connection = await database.OpenAsync();
        foreach (var table in await ListAsync(connection, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"))
            foreach (var column in await ListAsync(connection, $"SELECT name FROM pragma_table_info('{table}')"))
                columns.Add($"{table}.{column}");
        return columns;
    }

    private static async Task<SortedSet<string>> PostgresColumnsAsync(Database database)
    {
        await using var connection = await database.OpenAsync();
        var rows = await ListAsync(connection,
            $"SELECT table_name || '.' || column_name FROM information_schema.columns WHERE table_schema = '{database.Schema}'");
        return new SortedSet<string>(rows, StringComparer.Ordinal);
    }

    private static async Task<List<string>> ListAsync(DbConnection connection, string sql)
    {
        await using var command = connection.Command(sql);
        await using var reader = await command.ExecuteReaderAsync();
        var list = new List<string>();
        while (await reader.ReadAsync()) list.Add(reader.GetString(0));
        return list;
    }
}
