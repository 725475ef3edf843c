using Bulwark.Server.Guardrails.Input;

namespace Bulwark.Server.Guardrails.GuardModels;

/// <summary>
/// One check by the guard model stage: how it ended (<see cref="Outcome"/>), the verdict when
/// there is one, the decision the tenant's category policy (or the fallback) made of it, and how
/// long it took. For metrics and the audit record; never shown to the caller.
/// </summary>
public sealed record GuardModelCheck(string Outcome, GuardModelVerdict? Verdict, GuardDecision Decision, TimeSpan Elapsed)
{
    public const string Answered = "verdict";
    public const string TimedOut = "timeout";
    public const string Failed = "error";
    public const string TooLong = "too_long";
    public const string Unavailable = "unavailable";

    /// <summary>The audit record's <c>model</c> object: outcome, safety, categories, decision and milliseconds.</summary>
    public object ToAudit() => new
    {
        outcome = Outcome,
        safety = Verdict?.Safety.ToString().ToLowerInvariant(),
        categories = Verdict?.Categories ?? [],
        decision = Decision.Name(),
        ms = Math.Round(Elapsed.TotalMilliseconds, 1),
    };
}
