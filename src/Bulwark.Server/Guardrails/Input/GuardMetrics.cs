using System.Diagnostics.Metrics;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Guardrails.Input;

/// <summary>
/// The guard's instruments, on the server's meter: <c>bulwark_guard_verdicts</c> (by stage,
/// policy and decision) and <c>bulwark_guard_rule_hits</c> (by rule id). Verdicts carry no text.
/// </summary>
public sealed class GuardMetrics(Meter meter)
{
    public Counter<long> Verdicts { get; } = meter.CreateCounter<long>("bulwark_guard_verdicts", description: "Guard verdicts, by stage (input), policy and decision.");

    public Counter<long> RuleHits { get; } = meter.CreateCounter<long>("bulwark_guard_rule_hits", description: "Injection rules hit by scanned requests, by rule id.");

    public void Record(InjectionVerdict verdict, GuardPolicy policy)
    {
        Verdicts.Add(1, new KeyValuePair<string, object?>("stage", "input"), new("policy", policy.Name()), new("decision", verdict.Decision.Name()));
        foreach (var rule in verdict.RuleIds) RuleHits.Add(1, new KeyValuePair<string, object?>("rule", rule));
    }
}
