namespace Bulwark.Server.Storage;

/// <summary>
/// The schema, as numbered steps applied once each and recorded in <c>schema_migrations</c>.
/// Both databases run the same text; <c>{identity}</c> is the only dialect-specific token.
/// Integers are BIGINT and instants are Unix milliseconds so both engines read them alike.
/// </summary>
public static class Migrations
{
    private static readonly string[] Steps =
    [
        """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            hash TEXT NOT NULL,
            is_admin BIGINT NOT NULL,
            tenant TEXT NOT NULL,
            name TEXT NOT NULL,
            models TEXT NOT NULL,
            requests_per_minute BIGINT NOT NULL,
            tokens_per_minute BIGINT NOT NULL,
            tokens_per_day BIGINT NOT NULL,
            max_concurrent BIGINT NOT NULL,
            priority BIGINT NOT NULL,
            expires_at BIGINT NULL,
            revoked BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            last_used_at BIGINT NULL,
            replaced_by TEXT NULL
        );
        CREATE TABLE usage_daily (
            key_id TEXT NOT NULL,
            day TEXT NOT NULL,
            requests BIGINT NOT NULL,
            prompt_tokens BIGINT NOT NULL,
            completion_tokens BIGINT NOT NULL,
            PRIMARY KEY (key_id, day)
        );
        CREATE TABLE audit_events (
            seq {identity},
            at BIGINT NOT NULL,
            kind TEXT NOT NULL,
            request_id TEXT NULL,
            key_id TEXT NULL,
            tenant TEXT NULL,
            model TEXT NULL,
            client_ip TEXT NULL,
            route TEXT NULL,
            status BIGINT NULL,
            prompt_tokens BIGINT NULL,
            completion_tokens BIGINT NULL,
            latency_us BIGINT NULL,
            reason TEXT NULL,
            detail TEXT NULL
        );
        CREATE INDEX audit_events_at ON audit_events (at);
        CREATE TABLE ip_blocks (
            cidr TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            created_at BIGINT NOT NULL
        );
        CREATE TABLE incident_events (
            seq {identity},
            at BIGINT NOT NULL,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL
        );
        """,
        // 2: the input guard's verdict (rule ids and score as JSON, never text) on request records,
        // and a key's own input guard policy (off|flag|block; NULL: its tenant's).
        """
        ALTER TABLE audit_events ADD COLUMN guard TEXT NULL;
        ALTER TABLE api_keys ADD COLUMN guard TEXT NULL;
        """,
        // 3: each replica's active requests, so an operator sees them all from any replica.
        """
        CREATE TABLE replica_requests (
            replica TEXT PRIMARY KEY,
            updated_at BIGINT NOT NULL,
            requests TEXT NOT NULL
        );
        """,
        // 4: the upstream endpoint (scheme://host:port) that served a forwarded request.
        """
        ALTER TABLE audit_events ADD COLUMN upstream TEXT NULL;
        """,
        // 5: requests/hour and tokens/hour beside the per-minute and per-day limits; keys stored
        // before them read 0, no limit.
        """
        ALTER TABLE api_keys ADD COLUMN requests_per_hour BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE api_keys ADD COLUMN tokens_per_hour BIGINT NOT NULL DEFAULT 0;
        """,
        // 6: when the grace of a key rotated with overlap ends (Unix ms); NULL: not being retired.
        """
        ALTER TABLE api_keys ADD COLUMN retires_at BIGINT NULL;
        """,
        // 7: a unique id per audit record, so a record written twice (a spool replayed after a crash
        // that came between the store's commit and the spool's truncation) is stored once.
        """
        ALTER TABLE audit_events ADD COLUMN record_id TEXT NULL;
        CREATE UNIQUE INDEX audit_events_record_id ON audit_events (record_id);
        """,
    ];

    /// <summary>The schema version this build writes.</summary>
    public static int Latest => Steps.Length;

    /// <summary>Creates the schema (and for SQLite turns on WAL) and applies every missing step.</summary>
    /// <remarks>
    /// Replicas of a fresh deployment start, and so migrate, at the same moment. On PostgreSQL,
    /// even <c>CREATE SCHEMA IF NOT EXISTS</c> fails in the loser of such a race, so the whole
    /// migration holds an advisory lock named after the schema; the others wait, then find every
    /// step applied. SQLite serialises by itself: each step's transaction begins IMMEDIATE and
    /// waits out the busy timeout.
    /// </remarks>
    public static Task ApplyAsync(Database database, CancellationToken ct = default) => ApplyAsync(database, Latest, ct);

    /// <summary>Applies the missing steps up to version <paramref name="through"/> only: how tests build a store as an older release left it.</summary>
    internal static async Task ApplyAsync(Database database, int through, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(through, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(through, Latest);
        await using var connection = await database.OpenAsync(ct);
        if (database.Dialect == SqlDialect.Sqlite)
        {
            await ApplyStepsAsync(database, connection, through, ct);
            return;
        }
        // The schema name is a checked plain identifier (Database.Postgres), and a parameter besides.
        const string lockId = "hashtext('bulwark migrations ' || @schema)";
        await connection.ExecuteAsync($"SELECT pg_advisory_lock({lockId});", ct, ("@schema", database.Schema));
        try
        {
            await ApplyStepsAsync(database, connection, through, ct);
        }
        finally
        {
            // A session lock outlives the pooled connection's return: release it explicitly.
            await connection.ExecuteAsync($"SELECT pg_advisory_unlock({lockId});", CancellationToken.None, ("@schema", database.Schema));
        }
    }

    private static async Task ApplyStepsAsync(Database database, System.Data.Common.DbConnection connection, int through, CancellationToken ct)
    {
        if (database.Dialect == SqlDialect.Sqlite)
            await connection.ExecuteAsync("PRAGMA journal_mode=WAL;", ct);
        else
            await connection.ExecuteAsync($"CREATE SCHEMA IF NOT EXISTS {database.Schema};", ct);

        await connection.ExecuteAsync(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);", ct);

        for (var version = 1; version <= through; version++)
        {
            await using var tx = await connection.BeginTransactionAsync(ct);
            await using (var check = connection.Command("SELECT COUNT(*) FROM schema_migrations WHERE version = @v", ("@v", (long)version)))
            {
                check.Transaction = tx;
                if (Convert.ToInt64(await check.ExecuteScalarAsync(ct)) > 0) { await tx.RollbackAsync(ct); continue; }
            }
            // Processes migrating at once are serialised (see ApplyAsync); the primary key on
            // version stays as the last line of defence against a step recorded twice.
            await using (var step = connection.Command(Steps[version - 1].Replace("{identity}", database.Dialect.IdentityColumn)))
            {
                step.Transaction = tx;
                await step.ExecuteNonQueryAsync(ct);
            }
            await using (var record = connection.Command("INSERT INTO schema_migrations (version, applied_at) VALUES (@v, @at)",
                             ("@v", (long)version), ("@at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())))
            {
                record.Transaction = tx;
                await record.ExecuteNonQueryAsync(ct);
            }
            await tx.CommitAsync(ct);
        }
    }
}
