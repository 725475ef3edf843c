using Bulwark.Server.Requests;
namespace Bulwark.Server.Guardrails.Input;

/// <summary>
/// The prompt-injection scanner: the rule set, then the model over n-grams and rule hits.
/// Under <see cref="GuardPolicy.Flag"/> a text is flagged when its score reaches the flag
/// threshold or a rule with a <see cref="GuardDecision.Flag"/> floor fires; under
/// <see cref="GuardPolicy.Block"/> it is blocked when its score reaches the block threshold or a
/// decisive rule fires, and flagged on the flag conditions otherwise. Thread-safe.
/// </summary>
public sealed class InjectionScanner(InjectionModel model)
{
    public static InjectionScanner Default { get; } = new(InjectionModel.Default);

    public InjectionModel Model { get; } = model;

    public InjectionVerdict Scan(string text, GuardPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (policy == GuardPolicy.Off) return InjectionVerdict.Skipped;
        var scan = ScanText.From(text);
        var hits = InjectionRules.Hits(text, scan);
        var score = Model.Score(Model.Features.Instances(scan.Normalized, hits));
        return new InjectionVerdict(hits, score, Decide(score, Floor(hits), policy));
    }

    /// <summary>The decision for a score and rule floor under a policy (also used by evaluation on precomputed scores).</summary>
    public GuardDecision Decide(double score, GuardDecision floor, GuardPolicy policy) =>
        Decide(score, floor, policy, Model.FlagThreshold, Model.BlockThreshold);

    /// <summary>The decision at given thresholds (evaluation calibrates thresholds apart from any model file).</summary>
    public static GuardDecision Decide(double score, GuardDecision floor, GuardPolicy policy, float flagThreshold, float blockThreshold)
    {
        if (policy == GuardPolicy.Off) return GuardDecision.Allow;
        if (policy == GuardPolicy.Block && (score >= blockThreshold || floor == GuardDecision.Block)) return GuardDecision.Block;
        return score >= flagThreshold || floor >= GuardDecision.Flag ? GuardDecision.Flag : GuardDecision.Allow;
    }

    public static GuardDecision Floor(IEnumerable<string> ruleIds)
    {
        var floor = GuardDecision.Allow;
        foreach (var id in ruleIds)
        {
            var rule = InjectionRules.ById(id);
            if (rule.Floor > floor) floor = rule.Floor;
        }
        return floor;
    }
}
