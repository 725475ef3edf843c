using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Reference;

namespace Bulwark.Engine.Evaluation;

/// <summary>Figures of a candidate model against a reference over the same token sequences.</summary>
public sealed record ComparisonFigures(int Sequences, int Positions, double MeanCosine, double MinCosine, double Top1Agreement, double MeanKl, double MaxKl);

/// <summary>
/// Runs a reference model and a candidate (typically its quantized version) on the same probe
/// sequences and compares their logits at every position. Each probe is extended with the
/// reference's own greedy continuation, so the figures cover generated positions as well as the
/// prompt; the candidate is then fed exactly the same tokens (teacher forcing), so one early
/// disagreement does not make every later position incomparable.
/// </summary>
public static class ModelComparison
{
    public static ComparisonFigures Run(LlamaModel reference, LlamaModel candidate, IReadOnlyList<int[]> probes,
        int continuationTokens, IProgress<int>? progress = null, CancellationToken ct = default)
    {
        if (probes.Count == 0) throw new ArgumentException("the probe set is empty", nameof(probes));
        if (reference.Config.VocabularySize != candidate.Config.VocabularySize)
            throw new ArgumentException($"the models' vocabularies differ ({reference.Config.VocabularySize} vs {candidate.Config.VocabularySize} tokens); they are not versions of one model");
        ArgumentOutOfRangeException.ThrowIfNegative(continuationTokens);
        var context = Math.Min(reference.Config.ContextLength, candidate.Config.ContextLength);

        double sumCos = 0, minCos = 1, sumKl = 0, maxKl = 0;
        int positions = 0, agree = 0, done = 0;
        var referenceRows = new List<float[]>();
        foreach (var probe in probes)
        {
            ct.ThrowIfCancellationRequested();
            if (probe.Length == 0) throw new ArgumentException("a probe has no tokens", nameof(probes));
            var length = Math.Min(probe.Length + continuationTokens, context);
            if (probe.Length > length) throw new ArgumentException($"a probe has {probe.Length} tokens; the models' context is {context}", nameof(probes));
            var tokens = new int[length];
            probe.CopyTo(tokens, 0);
            referenceRows.Clear();
            using (var session = new LlamaSession(reference, length))
            {
                for (var pos = 0; pos < length; pos++)
                {
                    var logits = session.Forward(tokens[pos], pos);
                    referenceRows.Add(logits.ToArray());
                    if (pos + 1 < length && pos + 1 >= probe.Length) tokens[pos + 1] = LogitComparison.Argmax(logits);
                }
            }
            using (var session = new LlamaSession(candidate, length))
            {
                for (var pos = 0; pos < length; pos++)
                {
                    var logits = session.Forward(tokens[pos], pos);
                    var want = referenceRows[pos];
                    var cos = LogitComparison.Cosine(want, logits);
                    var kl = LogitComparison.KlDivergence(want, logits);
                    sumCos += cos;
                    minCos = Math.Min(minCos, cos);
                    sumKl += kl;
                    maxKl = Math.Max(maxKl, kl);
                    if (LogitComparison.Argmax(want) == LogitComparison.Argmax(logits)) agree++;
                    positions++;
                }
            }
            progress?.Report(++done);
        }
        return new ComparisonFigures(probes.Count, positions, sumCos / positions, minCos, (double)agree / positions, sumKl / positions, maxKl);
    }
}
