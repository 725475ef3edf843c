using Bulwark.Server.Audit;
using Bulwark.Server.Redaction;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Incidents;

/// <summary>
/// The operator's incident actions other than key changes (those are <see cref="KeyIssuer"/>):
/// block or unblock an IP range, cancel a request on whichever replica serves it, set the log
/// level. Each is stored, audited and announced on the incident log, which every replica polls.
/// </summary>
public sealed class IncidentControls(SecurityStorage storage, TimeProvider time)
{
    /// <summary>Blocks a range; returns its canonical form. Throws <see cref="FormatException"/> on bad input.</summary>
    public async Task<string> BlockIpAsync(string cidr, string reason, string actor, CancellationToken ct = default)
    {
        var range = CidrRange.Parse(cidr).ToString();
        reason = SecretRedactor.Redact(reason);
        await storage.IpBlocks.AddAsync(new IpBlock(range, reason, time.GetUtcNow()), ct);
        await storage.Incidents.AppendAsync(IncidentKinds.IpBlocksChanged, range, ct);
        await AuditAsync("ip.blocked", $"{range} by {actor}: {reason}", ct);
        return range;
    }

    /// <summary>Removes a block; false when that range was not blocked.</summary>
    public async Task<bool> UnblockIpAsync(string cidr, string actor, CancellationToken ct = default)
    {
        var range = CidrRange.Parse(cidr).ToString();
        if (!await storage.IpBlocks.RemoveAsync(range, ct)) return false;
        await storage.Incidents.AppendAsync(IncidentKinds.IpBlocksChanged, range, ct);
        await AuditAsync("ip.unblocked", $"{range} by {actor}", ct);
        return true;
    }

    public async Task CancelRequestAsync(string requestId, string actor, CancellationToken ct = default)
    {
        await storage.Incidents.AppendAsync(IncidentKinds.CancelRequest, requestId, ct);
        await AuditAsync("request.cancelled", $"{requestId} by {actor}", ct);
    }

    /// <summary>Sets the level on every replica; <c>null</c> returns them to their configuration.</summary>
    public async Task SetLogLevelAsync(LogLevel? level, string actor, CancellationToken ct = default)
    {
        var text = level?.ToString() ?? "default";
        await storage.Incidents.AppendAsync(IncidentKinds.LogLevel, text, ct);
        await AuditAsync("log.level", $"{text} by {actor}", ct);
    }

    /// <summary>
    /// Isolates (or, with <paramref name="isolate"/> false, resumes) the replica <paramref name="target"/> names
    /// (<see cref="IsolationCommand.AllReplicas"/> for every one) through the incident log; audited once here.
    /// The replica an admin call reached applies it to itself at once as well.
    /// </summary>
    /// <exception cref="ArgumentException">The target or reason is empty, too long or holds control characters.</exception>
    public async Task AnnounceIsolationAsync(bool isolate, string target, string reason, string actor, CancellationToken ct = default)
    {
        var command = IsolationCommand.Create(target, reason, actor);
        await storage.Incidents.AppendAsync(isolate ? IncidentKinds.ReplicaIsolate : IncidentKinds.ReplicaResume, command.ToJson(), ct);
        await AuditIsolationAsync(isolate, command, ct);
    }

    /// <summary>Audits an isolation or resume of one replica that was applied directly, without the incident log.</summary>
    public Task AuditIsolationAsync(bool isolate, IsolationCommand command, CancellationToken ct = default) =>
        AuditAsync(isolate ? "replica.isolated" : "replica.resumed", $"{command.Target} by {command.Actor}" + (isolate ? $": {command.Reason}" : ""), ct);

    private Task AuditAsync(string kind, string detail, CancellationToken ct) =>
        storage.Audit.WriteAsync([new AuditRecord { At = time.GetUtcNow(), Kind = kind, Detail = detail }], ct);
}
