using System.Diagnostics.Metrics;
using Bulwark.Server.Audit;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Admission;

/// <summary>
/// On what terms this replica takes new inference work, asked by the spine before anything else
/// (after identity): <b>isolation</b> (<see cref="ReplicaIsolation"/>), an incident action that refuses every new inference request
/// with 503 <c>replica_isolated</c> while requests already admitted finish and <c>/ready</c> fails,
/// so a load balancer drains the replica; and the <b>degradation level</b>
/// (<see cref="DegradationOptions"/>), read every <see cref="DegradationOptions.EvaluationInterval"/>
/// from the admission queue's depth and its oldest request's wait: a level's effects are a cap on
/// <c>max_tokens</c>, refusing keys below a priority, and (offline) refusing every inference request.
/// Both apply to embedded and forwarded models alike; both are metrics and shown by <c>/ready</c>.
/// With <c>Bulwark:Audit:WhenUnrecorded=refuse</c>, a third: new inference is refused with 503
/// <c>audit_unavailable</c> while audit records are being lost (<see cref="AuditWriter.IsLosingRecords"/>).
/// </summary>
public sealed class ServiceLevel : IHostedService, IDisposable
{
    private readonly AdmissionQueue _queue;
    private readonly ReplicaIsolation _isolation;
    private readonly DegradationOptions _options;
    private readonly AdmissionOptions _admission;
    private readonly ServerMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly AuditWriter? _audit;
    private readonly Lock _lock = new();
    private readonly Counter<long> _transitions;
    private ITimer? _timer;
    private DegradationLevel _level;
    private DateTimeOffset _levelSince;
    private string _why = "";
    private long _calmSince = -1;

    /// <param name="audit">The audit writer, when the security front is on.</param>
    /// <param name="auditOptions">Whether to refuse requests while audit records are lost (<see cref="UnrecordedPolicy.Refuse"/>).</param>
    public ServiceLevel(AdmissionQueue queue, ReplicaIsolation isolation, DegradationOptions options, AdmissionOptions admission, ServerMetrics metrics,
        TimeProvider time, ILogger<ServiceLevel> logger, AuditWriter? audit = null, AuditOptions? auditOptions = null)
    {
        (_queue, _isolation, _options, _admission, _metrics, _time, _logger) = (queue, isolation, options, admission, metrics, time, logger);
        _audit = auditOptions?.WhenUnrecorded == UnrecordedPolicy.Refuse ? audit : null;
        _levelSince = time.GetUtcNow();
        metrics.Meter.CreateObservableGauge("bulwark_degradation_level", () => (int)Level,
            description: "Degradation level: 0 normal, 1 reduced, 2 minimal, 3 offline.");
        metrics.Meter.CreateObservableGauge("bulwark_replica_isolated", () => Isolated is null ? 0 : 1,
            description: "1 while an operator has isolated this replica (new inference refused, /ready failing).");
        _transitions = metrics.Meter.CreateCounter<long>("bulwark_degradation_transitions", description: "Changes of degradation level, by the level entered.");
    }

    public DegradationLevel Level { get { lock (_lock) return _level; } }

    /// <summary>The level, since when, and the signal that set it (empty at normal).</summary>
    public (DegradationLevel Level, DateTimeOffset Since, string Why) Degradation { get { lock (_lock) return (_level, _levelSince, _why); } }

    /// <summary>The isolation in force, or null.</summary>
    public Isolation? Isolated => _isolation.Current;

    /// <summary>Audit records are being lost and the policy is to refuse what cannot be audited.</summary>
    public bool Unaudited => _audit?.IsLosingRecords == true;

    /// <summary>
    /// The refusal of a new inference request from a key of <paramref name="priority"/>, or null when it may go on:
    /// isolation first, then the level's priority floor (offline refuses every priority).
    /// </summary>
    public ApiException? Refusal(int priority, RequestUsage usage)
    {
        if (Isolated is { } isolation)
        {
            usage.RejectionReason = "replica_isolated";
            _metrics.Rejected.Add(1, new KeyValuePair<string, object?>("reason", "replica_isolated"));
            return new ApiException(StatusCodes.Status503ServiceUnavailable,
                $"This replica is isolated for an incident since {isolation.Since:u} and takes no new requests. Retry on another replica.",
                "server_error", null, "replica_isolated", _admission.RetryAfter);
        }
        if (Unaudited)
        {
            usage.RejectionReason = "audit_unavailable";
            _metrics.Rejected.Add(1, new KeyValuePair<string, object?>("reason", "audit_unavailable"));
            return new ApiException(StatusCodes.Status503ServiceUnavailable,
                "This server cannot record requests in its audit log now and is configured to serve none it cannot record. Retry later.",
                "server_error", null, "audit_unavailable", _admission.RetryAfter);
        }
        var (level, _, why) = Degradation;
        var step = _options.Step(level);
        if (step is null) return null;
        if (level == DegradationLevel.Offline || priority < step.MinPriority)
        {
            usage.RejectionReason = "degraded:" + Name(level);
            _metrics.Rejected.Add(1, new KeyValuePair<string, object?>("reason", "degraded"));
            var whom = level == DegradationLevel.Offline ? "takes no inference requests" : $"serves only keys of priority {step.MinPriority} or more (this key: {priority})";
            return new ApiException(StatusCodes.Status503ServiceUnavailable,
                $"The server is overloaded (degradation level {Name(level)}: {why}) and {whom}. Retry later.",
                "server_error", null, "server_degraded", _admission.RetryAfter);
        }
        return null;
    }

    /// <summary>The cap on <c>max_tokens</c> at the current level, or null.</summary>
    public int? MaxTokensCap => _options.Step(Level)?.MaxTokens;

    /// <summary>Why <c>/ready</c> must fail (isolated, offline), or null.</summary>
    public string? NotReady()
    {
        if (Isolated is { } isolation) return $"isolated since {isolation.Since:u} by {isolation.Actor}: {isolation.Reason}";
        if (Unaudited) return "audit records are being lost (neither the store nor the spool takes them) and Bulwark:Audit:WhenUnrecorded is refuse";
        var (level, since, why) = Degradation;
        return level == DegradationLevel.Offline ? $"degradation level offline since {since:u}: {why}" : null;
    }

    /// <summary>A line for <c>/ready</c> when the level is not normal, or null.</summary>
    public string? Detail()
    {
        var (level, since, why) = Degradation;
        return level == DegradationLevel.Normal ? null : $"degradation: {Name(level)} since {since:u} ({why})";
    }

    public static string Name(DegradationLevel level) => level.ToString().ToLowerInvariant();

    /// <summary>Reads the signals once and moves the level: up at once, down after <see cref="DegradationOptions.RecoveryTime"/> below.</summary>
    public void Evaluate()
    {
        if (!_options.Enabled) return;
        var waiting = _queue.Waiting;
        var fill = _queue.Capacity == 0 ? (waiting > 0 ? 1.0 : 0.0) : waiting / (double)_queue.Capacity;
        var oldest = _queue.OldestWait();
        var target = DegradationLevel.Normal;
        foreach (var level in (ReadOnlySpan<DegradationLevel>)[DegradationLevel.Offline, DegradationLevel.Minimal, DegradationLevel.Reduced])
            if (_options.Step(level)!.Triggers(fill, oldest)) { target = level; break; }
        var signals = $"queue {waiting}/{_queue.Capacity} waiting, oldest {oldest.TotalSeconds:0.#} s";
        DegradationLevel? entered = null;
        lock (_lock)
        {
            var now = _time.GetTimestamp();
            if (target > _level || (target < _level && _calmSince >= 0 && _time.GetElapsedTime(_calmSince, now) >= _options.RecoveryTime))
            {
                entered = target;
                _level = target;
                _levelSince = _time.GetUtcNow();
                _why = target == DegradationLevel.Normal ? "" : signals;
                _calmSince = -1;
            }
            else if (target < _level) { if (_calmSince < 0) _calmSince = now; }
            else _calmSince = -1;
        }
        if (entered is not { } to) return;
        _transitions.Add(1, new KeyValuePair<string, object?>("level", Name(to)));
        if (to == DegradationLevel.Normal) _logger.LogInformation("Degradation level back to normal ({Signals})", signals);
        else _logger.LogWarning("Degradation level {Level} ({Signals})", Name(to), signals);
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_options.Enabled)
            _timer = _time.CreateTimer(static s => ((ServiceLevel)s!).Evaluate(), this, _options.EvaluationInterval, _options.EvaluationInterval);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _timer?.Dispose();
        return Task.CompletedTask;
    }

    public void Dispose() => _timer?.Dispose();
}
