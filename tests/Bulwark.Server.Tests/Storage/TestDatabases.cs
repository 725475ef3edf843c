using Bulwark.Server.Storage;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Storage;

/// <summary>
/// Fresh stores for one test: a SQLite file in a temp folder, or a new schema in the PostgreSQL
/// that ./test.sh starts. Tests needing PostgreSQL or Redis fail (never skip) without them.
/// </summary>
internal static class TestDatabases
{
    public const string Sqlite = "sqlite";
    public const string Postgres = "postgres";

    public static string PostgresConnectionString =>
        Environment.GetEnvironmentVariable("BULWARK_TEST_POSTGRES") is { Length: > 0 } cs
            ? cs
            : throw new InvalidOperationException("BULWARK_TEST_POSTGRES is not set: run the tests through ./test.sh (it starts PostgreSQL and Redis)");

    public static string RedisConfiguration =>
        Environment.GetEnvironmentVariable("BULWARK_TEST_REDIS") is { Length: > 0 } r
            ? r
            : throw new InvalidOperationException("BULWARK_TEST_REDIS is not set: run the tests through ./test.sh (it starts PostgreSQL and Redis)");

    public static string NewSchemaName() => "t_" + Guid.NewGuid().ToString("N")[..16];

    /// <summary>Storage options for a fresh store of the given kind.</summary>
    public static StorageOptions Options(string kind) => kind switch
    {
        Sqlite => new StorageOptions(),
        Postgres => new StorageOptions { Postgres = PostgresConnectionString, Schema = NewSchemaName() },
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static async Task<(SecurityStorage Storage, DataDirectory Data)> OpenAsync(string kind)
    {
        var data = DataDirectory.Resolve(Fixtures.NewTempDirectory(kind)).EnsureCreated();
        return (await SecurityStorage.OpenAsync(data, Options(kind)), data);
    }
}
