using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Admission;

/// <summary>An operator's isolation of this replica: why, since when, by whom.</summary>
public sealed record Isolation(string Reason, DateTimeOffset Since, string Actor);

/// <summary>
/// Whether an operator has isolated this replica for an incident (<c>bulwark admin isolate</c>):
/// <see cref="ServiceLevel"/> then refuses new inference and fails <c>/ready</c>. Set by the admin
/// API on the replica it reaches and by the incident feed for orders naming this replica or all.
/// It lives in memory: a restarted process starts taking work again.
/// </summary>
public sealed class ReplicaIsolation(TimeProvider time, ILogger<ReplicaIsolation> logger)
{
    private Isolation? _isolation;

    /// <summary>The isolation in force, or null.</summary>
    public Isolation? Current => Volatile.Read(ref _isolation);

    /// <summary>Isolates this replica; false (and nothing changes) when it already is.</summary>
    public bool Isolate(string reason, string actor)
    {
        if (Interlocked.CompareExchange(ref _isolation, new Isolation(reason, time.GetUtcNow(), actor), null) is not null) return false;
        logger.LogWarning("Replica isolated by {Actor}: new inference requests are refused and /ready fails until resumed ({Reason})", actor, reason);
        return true;
    }

    /// <summary>Ends the isolation; false when there was none.</summary>
    public bool Resume(string actor)
    {
        if (Interlocked.Exchange(ref _isolation, null) is null) return false;
        logger.LogWarning("Replica resumed by {Actor}: taking inference requests again", actor);
        return true;
    }
}
