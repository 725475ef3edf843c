namespace Bulwark.Server.Admission;

/// <summary>How far the server has stepped back from full service; each level's effects are configured.</summary>
public enum DegradationLevel
{
    /// <summary>Full service.</summary>
    Normal = 0,
    /// <summary>First step under load: by default <c>max_tokens</c> is capped.</summary>
    Reduced = 1,
    /// <summary>Second step: a tighter cap, and keys below a priority are refused.</summary>
    Minimal = 2,
    /// <summary>Every inference request is refused (the admin API keeps working); <c>/ready</c> fails.</summary>
    Offline = 3,
}

/// <summary>When one degradation level starts, and what it does. A level starts when any of its triggers holds.</summary>
public sealed class DegradationStep
{
    /// <summary>Start when this fraction (0..1] of the admission queue's places are taken; null: queue depth never starts it.</summary>
    public double? QueueFill { get; set; }

    /// <summary>Start when the longest-waiting request has waited this long; null: latency never starts it.</summary>
    public TimeSpan? QueueWait { get; set; }

    /// <summary>At this level <c>max_tokens</c> is at most this (a larger or absent request is lowered); null: no cap.</summary>
    public int? MaxTokens { get; set; }

    /// <summary>At this level requests from keys of a lower priority (0..9) are refused with 503; 0 refuses none.</summary>
    public int MinPriority { get; set; }

    internal bool Triggers(double fill, TimeSpan oldestWait) =>
        (QueueFill is { } f && fill >= f) || (QueueWait is { } w && oldestWait >= w);
}

/// <summary>
/// The seeds' graceful degradation (configuration section <c>Bulwark:Degradation</c>): levels
/// normal → reduced → minimal → offline, driven by the admission queue's depth and its oldest
/// request's wait, for embedded and forwarded models alike. A level starts as soon as one of its
/// triggers holds; the server steps back down only after the signals have stayed below for
/// <see cref="RecoveryTime"/>, so it does not flap.
/// </summary>
public sealed class DegradationOptions
{
    public const string Section = "Bulwark:Degradation";

    /// <summary>False keeps the server at <see cref="DegradationLevel.Normal"/> whatever the load.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How often the signals are read.</summary>
    public TimeSpan EvaluationInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long the signals must stay below a level's triggers before the server leaves it.</summary>
    public TimeSpan RecoveryTime { get; set; } = TimeSpan.FromSeconds(30);

    public DegradationStep Reduced { get; set; } = new() { QueueFill = 0.5, QueueWait = TimeSpan.FromSeconds(5), MaxTokens = 1024 };

    public DegradationStep Minimal { get; set; } = new() { QueueFill = 0.9, QueueWait = TimeSpan.FromSeconds(15), MaxTokens = 256, MinPriority = 5 };

    /// <summary>No trigger by default: the server never goes offline on its own unless configured to.</summary>
    public DegradationStep Offline { get; set; } = new();

    /// <summary>The configured step of <paramref name="level"/> (null for normal).</summary>
    public DegradationStep? Step(DegradationLevel level) => level switch
    {
        DegradationLevel.Reduced => Reduced,
        DegradationLevel.Minimal => Minimal,
        DegradationLevel.Offline => Offline,
        _ => null,
    };

    public IEnumerable<string> Validate()
    {
        if (EvaluationInterval < TimeSpan.FromMilliseconds(10) || EvaluationInterval > TimeSpan.FromMinutes(1))
            yield return $"{Section}:EvaluationInterval must be between 00:00:00.010 and 00:01:00; got {EvaluationInterval}.";
        if (RecoveryTime < TimeSpan.Zero || RecoveryTime > TimeSpan.FromHours(1))
            yield return $"{Section}:RecoveryTime must be between 0 and 01:00:00; got {RecoveryTime}.";
        foreach (var level in new[] { DegradationLevel.Reduced, DegradationLevel.Minimal, DegradationLevel.Offline })
        {
            var step = Step(level)!;
            var name = $"{Section}:{level}";
            if (step.QueueFill is { } fill && (double.IsNaN(fill) || fill <= 0 || fill > 1))
                yield return $"{name}:QueueFill must be more than 0 and at most 1 (a fraction of Bulwark:Admission:MaxQueueLength); got {fill}.";
            if (step.QueueWait is { } wait && (wait <= TimeSpan.Zero || wait > TimeSpan.FromHours(1)))
                yield return $"{name}:QueueWait must be more than 0 and at most 01:00:00; got {wait}.";
            if (step.MaxTokens is < 1)
                yield return $"{name}:MaxTokens must be at least 1 (or empty for no cap); got {step.MaxTokens}.";
            if (step.MinPriority is < 0 or > 9)
                yield return $"{name}:MinPriority must be between 0 and 9; got {step.MinPriority}.";
        }
    }
}
