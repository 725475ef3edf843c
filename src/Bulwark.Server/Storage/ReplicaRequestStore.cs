namespace Bulwark.Server.Storage;

/// <summary>One replica's last published list of the requests it serves (a JSON array), as of <see cref="At"/>.</summary>
public sealed record ReplicaSnapshot(string Replica, DateTimeOffset At, string Requests);

/// <summary>
/// The <c>replica_requests</c> table: each replica's latest list of active requests, one row per
/// replica, so any replica can show an operator every request of the deployment.
/// </summary>
public sealed class ReplicaRequestStore(Database database)
{
    public async Task PublishAsync(ReplicaSnapshot snapshot, CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        await connection.ExecuteAsync(
            "INSERT INTO replica_requests (replica, updated_at, requests) VALUES (@replica, @at, @requests) " +
            "ON CONFLICT (replica) DO UPDATE SET updated_at = excluded.updated_at, requests = excluded.requests",
            ct, ("@replica", snapshot.Replica), ("@at", snapshot.At.ToUnixTimeMilliseconds()), ("@requests", snapshot.Requests));
    }

    /// <summary>Snapshots published at or after <paramref name="since"/>; older ones are from replicas that stopped.</summary>
    public async Task<IReadOnlyList<ReplicaSnapshot>> ReadSinceAsync(DateTimeOffset since, CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        await using var command = connection.Command(
            "SELECT replica, updated_at, requests FROM replica_requests WHERE updated_at >= @since ORDER BY replica", ("@since", since.ToUnixTimeMilliseconds()));
        await using var reader = await command.ExecuteReaderAsync(ct);
        var snapshots = new List<ReplicaSnapshot>();
        while (await reader.ReadAsync(ct))
            snapshots.Add(new ReplicaSnapshot(reader.GetString(0), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(1)), reader.GetString(2)));
        return snapshots;
    }

    /// <summary>How many replicas published at or after <paramref name="since"/>: the replicas alive now.</summary>
    public async Task<int> CountSinceAsync(DateTimeOffset since, CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        await using var command = connection.Command("SELECT COUNT(*) FROM replica_requests WHERE updated_at >= @since", ("@since", since.ToUnixTimeMilliseconds()));
        return Convert.ToInt32(await command.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Removes one replica's row (at its shutdown) or every row older than <paramref name="before"/>.</summary>
    public async Task<int> RemoveAsync(string? replica, DateTimeOffset before, CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        return await connection.ExecuteAsync("DELETE FROM replica_requests WHERE replica = @replica OR updated_at < @before",
            ct, ("@replica", replica ?? ""), ("@before", before.ToUnixTimeMilliseconds()));
    }
}
