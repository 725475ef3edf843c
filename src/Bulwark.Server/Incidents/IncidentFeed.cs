using Bulwark.Server.Admission;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Incidents;

/// <summary>
/// Applies incident events written by any replica or the CLI: evicts a changed key from the cache,
/// reloads the IP block list, cancels a request served here, sets the log level, isolates or
/// resumes this replica when the order names it (or every replica), and hands other kinds to their
/// <see cref="IIncidentHandler"/> (a model's serving version). Polls the shared
/// store every <see cref="SecurityOptions.IncidentPollInterval"/> (250 ms by default), which is what
/// bounds "effective everywhere within 1 s". PostgreSQL may commit sequence numbers out of order,
/// so the last <see cref="Lookback"/> numbers are re-read and events already applied are skipped.
/// </summary>
public sealed class IncidentFeed(
    SecurityStorage storage, KeyCache keys, IpBlockList blocks, ActiveRequests requests, RuntimeLogLevel logLevel,
    ReplicaIsolation isolation, ReplicaIdentity replica, SecurityOptions options, ILogger<IncidentFeed> logger,
    IEnumerable<IIncidentHandler> handlers) : BackgroundService
{
    private const long Lookback = 100;
    private readonly Dictionary<string, IIncidentHandler> _handlers = handlers.ToDictionary(h => h.Kind, StringComparer.Ordinal);
    private readonly HashSet<long> _applied = [];
    private long _highest;
    private long _start;

    /// <summary>Loads current state (the block list) and the log position; call before serving.</summary>
    public async Task InitialiseAsync(CancellationToken ct)
    {
        _highest = _start = await storage.Incidents.MaxSeqAsync(ct);
        await ReloadBlocksAsync(ct);
    }

    /// <summary>Reads and applies new events once.</summary>
    public async Task PollAsync(CancellationToken ct)
    {
        var events = await storage.Incidents.ReadAfterAsync(Math.Max(0, _highest - Lookback), ct);
        var reloadBlocks = false;
        foreach (var e in events)
        {
            // Events from before start-up are history: their effect is already in the store.
            if (e.Seq <= _start || !_applied.Add(e.Seq)) continue;
            _highest = Math.Max(_highest, e.Seq);
            switch (e.Kind)
            {
                case IncidentKinds.KeyChanged: keys.Evict(e.Subject); break;
                case IncidentKinds.IpBlocksChanged: reloadBlocks = true; break;
                case IncidentKinds.CancelRequest: requests.Cancel(e.Subject); break;
                case IncidentKinds.LogLevel:
                    if (RuntimeLogLevel.TryParse(e.Subject, out var level)) logLevel.Set(level);
                    break;
                case var kind when _handlers.TryGetValue(kind, out var handler):
                    handler.Apply(e.Subject);
                    break;
                case IncidentKinds.ReplicaIsolate or IncidentKinds.ReplicaResume:
                    if (IsolationCommand.FromJson(e.Subject) is { } command && command.IsFor(replica.Id))
                    {
                        if (e.Kind == IncidentKinds.ReplicaIsolate) isolation.Isolate(command.Reason, command.Actor);
                        else isolation.Resume(command.Actor);
                    }
                    break;
            }
        }
        _applied.RemoveWhere(seq => seq <= _highest - Lookback);
        if (reloadBlocks) await ReloadBlocksAsync(ct);
    }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await InitialiseAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.IncidentPollInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try { await PollAsync(stoppingToken); }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning("incident feed: could not read {Store}: {Error}", storage.Database.Description, e.Message);
            }
        }
    }

    private async Task ReloadBlocksAsync(CancellationToken ct)
    {
        var stored = await storage.IpBlocks.ListAsync(ct);
        blocks.Replace(stored.Select(b => CidrRange.Parse(b.Cidr)));
    }
}
