using System.Data.Common;

namespace Bulwark.Server.Storage;

/// <summary>Builds parameterised commands; values are always parameters, never spliced into SQL.</summary>
internal static class DbCommands
{
    public static DbCommand Command(this DbConnection connection, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            var p = command.CreateParameter();
            p.ParameterName = name;
            p.Value = value ?? DBNull.Value;
            command.Parameters.Add(p);
        }
        return command;
    }

    /// <summary>Sets the command's parameters, in the order they were created, to <paramref name="values"/> (null as SQL NULL).</summary>
    public static void Bind(this DbCommand command, params ReadOnlySpan<object?> values)
    {
        if (values.Length != command.Parameters.Count)
            throw new ArgumentException($"the command has {command.Parameters.Count} parameters; got {values.Length} values", nameof(values));
        for (var i = 0; i < values.Length; i++) command.Parameters[i].Value = values[i] ?? DBNull.Value;
    }

    public static async Task<int> ExecuteAsync(this DbConnection connection, string sql, CancellationToken ct, params (string, object?)[] parameters)
    {
        await using var command = connection.Command(sql, parameters);
        return await command.ExecuteNonQueryAsync(ct);
    }

    public static long? NullableInt64(this DbDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetInt64(ordinal);

    public static string? NullableString(this DbDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);
}
