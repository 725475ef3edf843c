using System.Text.Json;
using System.Text.Json.Serialization;
using System.Threading.Channels;
using Bulwark.Server.Incidents;
using Bulwark.Server.Requests;
using Bulwark.Server.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Models;

/// <summary>A change of a model's serving version, as the incident log carries it to the other replicas.</summary>
public sealed record ServingChange(
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("version")] string Version,
    [property: JsonPropertyName("replica")] string Replica);

/// <summary>
/// Keeps this replica on the version other replicas switched to: <c>models use</c> and
/// <c>rollback</c> on any replica announce the version now serving on the incident log, and each
/// other replica that has the model loaded switches to it (verified as any load, audited as
/// <c>model.current</c> naming the replica it follows). Loads run one at a time in log order, off
/// the incident feed's loop, so a slow load never holds up a key revocation. A replica without the
/// model loaded ignores the change; one that cannot load the version (missing from its registry,
/// failing verification, over its memory budget) keeps serving what it has, logs an error and
/// audits <c>model.follow_failed</c>.
/// </summary>
public sealed class ModelServingFollower(ModelLifecycle lifecycle, ReplicaIdentity replica, ILogger<ModelServingFollower> logger)
    : BackgroundService, IIncidentHandler
{
    private readonly Channel<ServingChange> _changes = Channel.CreateUnbounded<ServingChange>(new UnboundedChannelOptions { SingleReader = true });
    private long _pending;

    public string Kind => IncidentKinds.ModelServing;

    /// <summary>Changes received but not yet applied (tests wait for zero).</summary>
    public long Pending => Interlocked.Read(ref _pending);

    public void Apply(string subject)
    {
        ServingChange? change;
        try { change = JsonSerializer.Deserialize<ServingChange>(subject); }
        catch (JsonException) { change = null; }
        if (change is null || change.Replica == replica.Id) return; // this replica made it
        Interlocked.Increment(ref _pending);
        _changes.Writer.TryWrite(change);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await foreach (var change in _changes.Reader.ReadAllAsync(stoppingToken))
        {
            try
            {
                await lifecycle.FollowAsync(change.Model, change.Version, change.Replica, stoppingToken);
            }
            catch (Exception e) when (e is ApiException or InvalidOperationException)
            {
                logger.LogError("Replica {Replica} switched model {Model} to version {Version}, but this replica cannot follow and keeps serving what it has: {Error}",
                    change.Replica, change.Model, change.Version, e.Message);
                lifecycle.AuditFollowFailed(change.Model, change.Version, change.Replica, e.Message);
            }
            finally
            {
                Interlocked.Decrement(ref _pending);
            }
        }
    }
}
