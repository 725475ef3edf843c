namespace Bulwark.Server.Storage;

/// <summary>
/// The few places where SQLite and PostgreSQL disagree. Everything else (ON CONFLICT upserts,
/// @name parameters, BIGINT/TEXT columns) is written once and runs on both, so the two stores
/// share one schema and one set of queries.
/// </summary>
public sealed class SqlDialect
{
    public static readonly SqlDialect Sqlite = new("sqlite", "INTEGER PRIMARY KEY AUTOINCREMENT");
    public static readonly SqlDialect Postgres = new("postgres", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY");

    private SqlDialect(string name, string identityColumn)
    {
        Name = name;
        IdentityColumn = identityColumn;
    }

    public string Name { get; }

    /// <summary>Column type of an auto-numbered primary key.</summary>
    public string IdentityColumn { get; }

    public override string ToString() => Name;
}
