using System.Text.Json;

namespace Bulwark.Server.Guardrails.Input;

/// <summary>
/// What the scanner concluded about one text: the rules it hit, the model's probability, and the
/// decision under the policy it was asked for. Carries no text, so it can go to metrics and the
/// audit record as it is.
/// </summary>
public sealed record InjectionVerdict(IReadOnlyList<string> RuleIds, double Score, GuardDecision Decision)
{
    public static readonly InjectionVerdict Skipped = new([], 0, GuardDecision.Allow);

    /// <summary>The audit record's <c>guard</c> field: <c>{"decision":...,"score":...,"rules":[...]}</c>, the score rounded to 4 decimals.</summary>
    public string ToAuditJson() =>
        JsonSerializer.Serialize(new { decision = Decision.Name(), score = Math.Round(Score, 4), rules = RuleIds });

    /// <summary>The same with the guard model's check as <c>model</c> (its outcome, safety, categories, decision, milliseconds).</summary>
    public string ToAuditJson(object model) =>
        JsonSerializer.Serialize(new { decision = Decision.Name(), score = Math.Round(Score, 4), rules = RuleIds, model });
}
