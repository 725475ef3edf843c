namespace Bulwark.Server.Storage;

/// <summary>Kinds of <see cref="IncidentEvent"/>; every replica applies each one it reads.</summary>
public static class IncidentKinds
{
    public const string KeyChanged = "key.changed";
    public const string IpBlocksChanged = "ip.changed";
    public const string CancelRequest = "request.cancel";
    public const string LogLevel = "log.level";
    /// <summary>Subject: <c>IsolationCommand</c> JSON naming the replica (or <c>*</c> for all), the reason and the actor.</summary>
    public const string ReplicaIsolate = "replica.isolate";
    public const string ReplicaResume = "replica.resume";
    /// <summary>Subject: <c>ServingChange</c> JSON (model, version, the replica that made the change).</summary>
    public const string ModelServing = "model.serving";
}

public sealed record IncidentEvent(long Seq, DateTimeOffset At, string Kind, string Subject);

/// <summary>
/// The <c>incident_events</c> table: an append-only log every replica (and the CLI, through the
/// shared database) writes to and every server polls, so a revoke, block or cancel made anywhere
/// takes effect everywhere within one poll interval.
/// </summary>
public sealed class IncidentEventStore(Database database)
{
    public async Task AppendAsync(string kind, string subject, CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        await connection.ExecuteAsync("INSERT INTO incident_events (at, kind, subject) VALUES (@at, @kind, @subject)", ct,
            ("@at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()), ("@kind", kind), ("@subject", subject));
    }

    public async Task<long> MaxSeqAsync(CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        await using var command = connection.Command("SELECT COALESCE(MAX(seq), 0) FROM incident_events");
        return Convert.ToInt64(await command.ExecuteScalarAsync(ct));
    }

    /// <summary>Events with a sequence number above <paramref name="afterSeq"/>, oldest first.</summary>
    public async Task<IReadOnlyList<IncidentEvent>> ReadAfterAsync(long afterSeq, CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        await using var command = connection.Command(
            "SELECT seq, at, kind, subject FROM incident_events WHERE seq > @after ORDER BY seq LIMIT 1000", ("@after", afterSeq));
        await using var reader = await command.ExecuteReaderAsync(ct);
        var events = new List<IncidentEvent>();
        while (await reader.ReadAsync(ct))
            events.Add(new IncidentEvent(reader.GetInt64(0), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(1)),
                reader.GetString(2), reader.GetString(3)));
        return events;
    }
}
