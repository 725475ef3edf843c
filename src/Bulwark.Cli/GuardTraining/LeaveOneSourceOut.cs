using Bulwark.Server.Guardrails.Input;
using Bulwark.Server.Guardrails;
using Bulwark.Server.Requests;

namespace Bulwark.Cli.GuardTraining;

/// <summary>What leave-one-source-out evaluation needs to know of one labelled text: its source, its label and the decision its rules force.</summary>
public readonly record struct HoldoutItem(string Source, bool IsAttack, GuardDecision Floor);

/// <summary>
/// Leave-one-source-out evaluation of a detector recipe: for each source, the recipe is trained on
/// the other sources only, its thresholds are calibrated on the other sources only — by an inner
/// leave-one-source-out over them, so the thresholds are quantiles of scores of sources the scoring
/// model had not seen, which is the situation of a text from a new source — and the left-out
/// source is scored at those thresholds. The scores of every source are pooled for the figures.
/// Nothing of the left-out source (not its texts, not its score distribution) reaches its model or
/// its thresholds. A held-out split of the same sources plus a new one scored a detector calibrated
/// on held-out rows (k-fold) at 6.4 % flag false positives against the 3.5 % it was calibrated to;
/// this is the measurement that anticipates that.
/// </summary>
/// <param name="flagFpr">Share of the inner held-out benign scores allowed at or above the flag threshold.</param>
/// <param name="blockFpr">The same for the block threshold.</param>
/// <param name="calibrationRuns">Training runs (0, 1, …, passed to the recipe) whose inner scores are pooled for the thresholds.</param>
public sealed class LeaveOneSourceOut(double flagFpr, double blockFpr, int calibrationRuns = 1)
{
    /// <summary>
    /// Trains the recipe on the items at the given indices (run 0 for the model that scores the
    /// left-out source; runs 1.. only for calibration) and returns a scorer of item indices.
    /// </summary>
    public delegate Func<int, double> Recipe(IReadOnlyList<int> training, int run);

    /// <summary>Runs the evaluation; needs at least three sources (the inner evaluation leaves a second one out).</summary>
    public LeaveOneSourceOutResult Run(IReadOnlyList<HoldoutItem> items, Recipe fit)
    {
        if (calibrationRuns < 1) throw new ArgumentOutOfRangeException(nameof(calibrationRuns), calibrationRuns, "calibration runs must be at least 1");
        var sources = items.Select(i => i.Source).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        if (sources.Length < 3)
            throw new ArgumentException($"leave-one-source-out needs texts of at least 3 sources (field 'source'); got {sources.Length}");
        var bySource = sources.ToDictionary(s => s, s => Enumerable.Range(0, items.Count).Where(i => items[i].Source == s).ToArray(), StringComparer.Ordinal);
        // A model trained without sources {a, b} scores b in the outer round of a and a in the round
        // of b: cached by the excluded pair, the inner rounds cost n(n-1)/2 fits per run, not n(n-1).
        var cache = new Dictionary<(string, string, int), Func<int, double>>();
        Func<int, double> Without(string a, string b, int run)
        {
            var key = string.CompareOrdinal(a, b) <= 0 ? (a, b, run) : (b, a, run);
            if (!cache.TryGetValue(key, out var scorer))
                cache[key] = scorer = fit(Enumerable.Range(0, items.Count).Where(i => items[i].Source != a && items[i].Source != b).ToArray(), run);
            return scorer;
        }

        var flagThresholds = new float[sources.Length];
        var blockThresholds = new float[sources.Length];
        var scores = new double[items.Count];
        var flagged = new bool[items.Count];
        var blocked = new bool[items.Count];
        for (var s = 0; s < sources.Length; s++)
        {
            var left = sources[s];
            var benign = new List<float>();
            foreach (var inner in sources)
            {
                if (inner == left) continue;
                for (var run = 0; run < calibrationRuns; run++)
                {
                    var scorer = Without(left, inner, run);
                    foreach (var i in bySource[inner])
                    {
                        if (!items[i].IsAttack) benign.Add((float)scorer(i));
                    }
                }
            }
            var descending = benign.OrderDescending().ToArray();
            var (flag, block) = (InjectionTrainer.ThresholdFor(descending, flagFpr), InjectionTrainer.ThresholdFor(descending, blockFpr));
            (flagThresholds[s], blockThresholds[s]) = (flag, block);
            var model = fit(Enumerable.Range(0, items.Count).Where(i => items[i].Source != left).ToArray(), 0);
            foreach (var i in bySource[left])
            {
                scores[i] = model(i);
                flagged[i] = InjectionEvaluation.Positive(InjectionScanner.Decide(scores[i], items[i].Floor, GuardPolicy.Flag, flag, block), GuardPolicy.Flag);
                blocked[i] = InjectionEvaluation.Positive(InjectionScanner.Decide(scores[i], items[i].Floor, GuardPolicy.Block, flag, block), GuardPolicy.Block);
            }
        }
        return new LeaveOneSourceOutResult(sources, flagThresholds, blockThresholds, scores,
            InjectionEvaluation.Of(items.Select((e, i) => (e.Source, flagged[i], e.IsAttack))),
            InjectionEvaluation.Of(items.Select((e, i) => (e.Source, blocked[i], e.IsAttack))));
    }
}

/// <summary>
/// Figures of <see cref="LeaveOneSourceOut"/>: per source (in ordinal order) the thresholds its
/// round calibrated, every text's score from the model that had not seen its source, and the
/// pooled figures per policy (overall and by source).
/// </summary>
public sealed record LeaveOneSourceOutResult(string[] Sources, float[] FlagThresholds, float[] BlockThresholds, double[] Scores,
    InjectionEvaluation Flag, InjectionEvaluation Block);
