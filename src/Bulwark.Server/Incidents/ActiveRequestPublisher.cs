using System.Text.Json;
using System.Text.Json.Serialization;
using Bulwark.Server.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Incidents;

/// <summary>A request in flight on some replica, as the admin API lists it.</summary>
public sealed record ActiveRequestView(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("key_id")] string KeyId,
    [property: JsonPropertyName("tenant")] string Tenant,
    [property: JsonPropertyName("route")] string Route,
    [property: JsonPropertyName("started_at")] DateTimeOffset StartedAt,
    [property: JsonPropertyName("replica")] string Replica);

/// <summary>
/// Publishes this replica's active requests to the shared store every <see cref="Period"/>, so
/// <c>GET /admin/requests</c> on any replica lists the whole deployment's (this replica's live,
/// the others' as of their last publication). One small upsert per second per replica, off the
/// request path. A replica that stops removes its row; one that crashed drops out of listings
/// once its row is older than <see cref="Freshness"/>. The same rows count the live replicas
/// (<see cref="LiveReplicas"/>), which is how a replica knows its share of a key's limits when
/// Redis is down (docs/reliability.md).
/// </summary>
public sealed class ActiveRequestPublisher(SecurityStorage storage, ActiveRequests requests, ReplicaIdentity replica, TimeProvider time, ILogger<ActiveRequestPublisher> logger)
    : BackgroundService
{
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(1);

    /// <summary>How old another replica's list may be and still be shown (three periods, plus clock skew between hosts).</summary>
    public static readonly TimeSpan Freshness = TimeSpan.FromSeconds(5);

    /// <summary>This replica's name in listings.</summary>
    public string ReplicaId => replica.Id;

    // One reference, swapped whole, so a reader never sees a count with another count's time.
    private sealed record LiveCount(int Count, long At);
    private LiveCount? _live;

    /// <summary>
    /// The replicas alive now (this one included), as counted after this replica's last publication;
    /// null when that count is older than <see cref="Freshness"/> (the store is unreachable), so no
    /// one divides by a number that may no longer hold.
    /// </summary>
    public int? LiveReplicas
    {
        get
        {
            var live = Volatile.Read(ref _live);
            return live is { Count: > 0 } && time.GetElapsedTime(live.At) <= Freshness ? live.Count : null;
        }
    }

    /// <summary>This replica's requests, now.</summary>
    public IEnumerable<ActiveRequestView> Local() =>
        requests.List().Select(r => new ActiveRequestView(r.RequestId, r.KeyId, r.Tenant, r.Route, r.StartedAt, ReplicaId));

    /// <summary>Every replica's requests: this one's live, the others' from their last publication.</summary>
    public async Task<IReadOnlyList<ActiveRequestView>> AllAsync(CancellationToken ct)
    {
        var all = Local().ToList();
        foreach (var snapshot in await storage.ReplicaRequests.ReadSinceAsync(time.GetUtcNow() - Freshness, ct))
            if (snapshot.Replica != ReplicaId)
                all.AddRange(JsonSerializer.Deserialize<ActiveRequestView[]>(snapshot.Requests) ?? []);
        return [.. all.OrderBy(r => r.StartedAt)];
    }

    public Task PublishAsync(CancellationToken ct) =>
        storage.ReplicaRequests.PublishAsync(new ReplicaSnapshot(ReplicaId, time.GetUtcNow(), JsonSerializer.Serialize(Local())), ct);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Period, time);
        var ticks = 0L;
        do
        {
            try
            {
                await PublishAsync(stoppingToken);
                var counted = time.GetTimestamp();
                Volatile.Write(ref _live, new LiveCount(await storage.ReplicaRequests.CountSinceAsync(time.GetUtcNow() - Freshness, stoppingToken), counted));
                // Now and then, rows of replicas long gone.
                if (ticks++ % 600 == 0) await storage.ReplicaRequests.RemoveAsync(null, time.GetUtcNow() - TimeSpan.FromHours(1), stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning("active requests: could not publish to {Store}: {Error}", storage.Database.Description, e.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try { await storage.ReplicaRequests.RemoveAsync(ReplicaId, DateTimeOffset.MinValue, cancellationToken); }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogWarning("active requests: could not remove this replica's row from {Store}: {Error}", storage.Database.Description, e.Message);
        }
    }
}
