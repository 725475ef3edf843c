using System.Diagnostics;
using Bulwark.Server.Guardrails.GuardModels;
using Bulwark.Server.Requests;

namespace Bulwark.Cli.GuardTraining;

/// <summary>
/// A guard model scored on labelled texts: each text is put to the classifier as a user's prompt,
/// the verdict becomes a decision through the default category policy (unsafe → block,
/// controversial → flag), and a text counts as called an attack as in <see cref="InjectionEvaluation.Positive"/>.
/// A check that ends without a verdict counts as not called and is reported in <see cref="Errors"/>.
/// </summary>
public sealed record GuardModelEvaluation(InjectionEvaluation Evaluation, IReadOnlyList<double> LatenciesMs, int Errors)
{
    public static async Task<GuardModelEvaluation> RunAsync(GuardModelClassifier classifier, IReadOnlyList<LabeledText> texts, GuardPolicy policy, CancellationToken cancellationToken = default)
    {
        var decisions = new GuardCategoryPolicy();
        var outcomes = new List<(string Source, bool Predicted, bool Actual)>(texts.Count);
        var latencies = new List<double>(texts.Count);
        var errors = 0;
        foreach (var t in texts)
        {
            var watch = Stopwatch.StartNew();
            bool predicted;
            try
            {
                var verdict = await classifier.ClassifyAsync(t.Text, null, cancellationToken).ConfigureAwait(false);
                predicted = InjectionEvaluation.Positive(decisions.Decide(verdict), policy);
            }
            catch (GuardModelException)
            {
                errors++;
                predicted = false;
            }
            latencies.Add(watch.Elapsed.TotalMilliseconds);
            outcomes.Add((t.Source, predicted, t.IsAttack));
        }
        return new GuardModelEvaluation(InjectionEvaluation.Of(outcomes), latencies, errors);
    }

    /// <summary>The latency at or under which a share <paramref name="p"/> of the checks finished (nearest rank), in milliseconds; 0 without checks.</summary>
    public double LatencyPercentile(double p)
    {
        if (LatenciesMs.Count == 0) return 0;
        var sorted = LatenciesMs.Order().ToArray();
        return sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
    }
}
