using Bulwark.Server.Guardrails.Input;
using Bulwark.Server.Guardrails;
using Bulwark.Server.Requests;
namespace Bulwark.Cli.GuardTraining;

/// <summary>Metrics of the scanner on labelled texts: overall and per source.</summary>
public sealed record InjectionEvaluation(ClassifierMetrics Overall, IReadOnlyDictionary<string, ClassifierMetrics> BySource)
{
    /// <summary>
    /// Runs <paramref name="scanner"/> on every text under <paramref name="policy"/>. A text counts
    /// as called an attack when the decision is <see cref="GuardDecision.Block"/> under the block
    /// policy, and <see cref="GuardDecision.Flag"/> or more under the flag policy.
    /// </summary>
    public static InjectionEvaluation Run(InjectionScanner scanner, IReadOnlyList<LabeledText> texts, GuardPolicy policy)
    {
        if (policy == GuardPolicy.Off) throw new ArgumentException("evaluation needs policy flag or block; off scans nothing", nameof(policy));
        var outcomes = new List<(string Source, bool Predicted, bool Actual)>(texts.Count);
        foreach (var t in texts)
        {
            var decision = scanner.Scan(t.Text, policy).Decision;
            outcomes.Add((t.Source, Positive(decision, policy), t.IsAttack));
        }
        return Of(outcomes);
    }

    public static bool Positive(GuardDecision decision, GuardPolicy policy) =>
        policy == GuardPolicy.Block ? decision == GuardDecision.Block : decision >= GuardDecision.Flag;

    public static InjectionEvaluation Of(IEnumerable<(string Source, bool Predicted, bool Actual)> outcomes)
    {
        var list = outcomes.ToList();
        var bySource = list.GroupBy(o => o.Source, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => ClassifierMetrics.Of(g.Select(o => (o.Predicted, o.Actual))), StringComparer.Ordinal);
        return new InjectionEvaluation(ClassifierMetrics.Of(list.Select(o => (o.Predicted, o.Actual))), bySource);
    }
}

/// <summary>
/// k-fold cross-validation of the training recipe: every text is scored by a model that never saw
/// it, the thresholds are calibrated on those out-of-fold scores (as <see cref="InjectionTrainer.Train"/>
/// does), and the figures are taken at them. Calibrating on the same scores that are measured is
/// one fitted number per policy, so the figures are slightly optimistic; the held-out split is the
/// unbiased check.
/// </summary>
public sealed record InjectionCrossValidation(float FlagThreshold, float BlockThreshold, InjectionEvaluation Flag, InjectionEvaluation Block)
{
    /// <summary>Figures of out-of-fold <paramref name="scores"/> at the thresholds of <paramref name="scanner"/>'s model.</summary>
    public static InjectionCrossValidation Of(InjectionScanner scanner, IReadOnlyList<InjectionTrainer.Example> examples, IReadOnlyList<double> scores)
    {
        InjectionEvaluation At(GuardPolicy policy) => InjectionEvaluation.Of(examples.Select((e, i) =>
            (e.Source, InjectionEvaluation.Positive(scanner.Decide(scores[i], e.Floor, policy), policy), e.IsAttack)));
        return new InjectionCrossValidation(scanner.Model.FlagThreshold, scanner.Model.BlockThreshold, At(GuardPolicy.Flag), At(GuardPolicy.Block));
    }
}
