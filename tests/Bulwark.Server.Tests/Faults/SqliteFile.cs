using Microsoft.Data.Sqlite;

namespace Bulwark.Server.Tests.Faults;

/// <summary>A server's SQLite file as the test sees it from outside: its own connection, unpooled, so nothing stays open.</summary>
internal static class SqliteFile
{
    /// <summary>What <c>PRAGMA integrity_check</c> says: "ok" for an intact database.</summary>
    public static async Task<string> IntegrityCheckAsync(string path) => (string)(await ScalarAsync(path, "PRAGMA integrity_check"))!;

    public static async Task<object?> ScalarAsync(string path, string sql, params (string Name, object Value)[] parameters)
    {
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters) command.Parameters.AddWithValue(name, value);
        return await command.ExecuteScalarAsync();
    }
}
