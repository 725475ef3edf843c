namespace Bulwark.Server.Guardrails.Input;

/// <summary>Settings of <see cref="InjectionTrainer"/>; the defaults produce the shipped model.</summary>
public sealed record InjectionTrainingOptions
{
    public int HashBits { get; init; } = 16;
    public int MinN { get; init; } = 3;
    public int MaxN { get; init; } = 5;
    public int Epochs { get; init; } = 20;
    public double LearningRate { get; init; } = 0.5;
    public double L2 { get; init; } = 3e-3;
    public int Folds { get; init; } = 5;

    /// <summary>False-positive rate the flag threshold is calibrated to on out-of-fold scores (below the 0.05 goal, for margin).</summary>
    public double FlagFpr { get; init; } = 0.04;

    /// <summary>False-positive rate the block threshold is calibrated to.</summary>
    public double BlockFpr { get; init; } = 0.01;

    public ulong Seed { get; init; } = 20261126;
}

/// <summary>
/// Trains the injection model: logistic regression with L2, fitted by AdaGrad over a seeded
/// shuffle, single-threaded, so the same data and options give the same bytes. Thresholds are
/// calibrated on out-of-fold scores of a k-fold cross-validation (stratified by source and label),
/// never on scores of texts the model was trained on.
/// </summary>
public sealed class InjectionTrainer(InjectionTrainingOptions options)
{
    public InjectionTrainingOptions Options { get; } = options;

    /// <summary>One text turned into features once, reused by every fold.</summary>
    public sealed record Example(List<(int[] Indices, float[] Values)> Instances, bool IsAttack, string Source, GuardDecision Floor);

    public InjectionFeatures NewFeatures() =>
        new(Options.HashBits, Options.MinN, Options.MaxN, InjectionRules.Default.Select(r => r.Id).ToArray());

    public static List<Example> Prepare(InjectionFeatures features, IEnumerable<LabeledText> texts)
    {
        var examples = new List<Example>();
        foreach (var t in texts)
        {
            var scan = ScanText.From(t.Text);
            var hits = InjectionRules.Hits(t.Text, scan);
            examples.Add(new Example(features.Instances(scan.Normalized, hits), t.IsAttack, t.Source, InjectionScanner.Floor(hits)));
        }
        return examples;
    }

    /// <summary>
    /// The model trained on every text, thresholds calibrated by cross-validation, and the
    /// cross-validated figures at those thresholds. Texts are put in a canonical order first, so
    /// the bytes depend on the set of texts, not on the order of the file.
    /// </summary>
    public (InjectionModel Model, InjectionCrossValidation CrossValidation) Train(IReadOnlyList<LabeledText> texts)
    {
        var features = NewFeatures();
        var ordered = texts.OrderBy(t => t.Source, StringComparer.Ordinal).ThenBy(t => t.IsAttack).ThenBy(t => t.Text, StringComparer.Ordinal).ToList();
        var examples = Prepare(features, ordered);
        var scores = CrossValidatedScores(features, examples, out _);
        var (flag, block) = Calibrate(scores, examples);
        var (weights, bias) = Fit(features.Dimension, examples);
        var model = new InjectionModel(features, weights, bias, flag, block);
        return (model, InjectionCrossValidation.Of(new InjectionScanner(model), examples, scores));
    }

    /// <summary>Out-of-fold probability of every example (each scored by the model trained on the other folds).</summary>
    public double[] CrossValidatedScores(InjectionFeatures features, IReadOnlyList<Example> examples, out int[] folds)
    {
        folds = AssignFolds(examples, Options.Folds);
        var scores = new double[examples.Count];
        for (var f = 0; f < Options.Folds; f++)
        {
            var fold = f;
            var assigned = folds;
            var train = examples.Where((_, i) => assigned[i] != fold).ToList();
            var (weights, bias) = Fit(features.Dimension, train);
            var model = new InjectionModel(features, weights, bias, 0.5f, 0.5f);
            for (var i = 0; i < examples.Count; i++)
            {
                if (folds[i] == fold) scores[i] = model.Score(examples[i].Instances);
            }
        }
        return scores;
    }

    /// <summary>Thresholds at which at most the target share of benign texts scores at or above them.</summary>
    public (float Flag, float Block) Calibrate(IReadOnlyList<double> scores, IReadOnlyList<Example> examples)
    {
        var negatives = scores.Where((_, i) => !examples[i].IsAttack).Select(s => (float)s).OrderDescending().ToArray();
        return (ThresholdFor(negatives, Options.FlagFpr), ThresholdFor(negatives, Options.BlockFpr));
    }

    /// <summary>Smallest threshold with at most <paramref name="fpr"/> of <paramref name="descending"/> at or above it.</summary>
    public static float ThresholdFor(float[] descending, double fpr)
    {
        if (descending.Length == 0) return 0.5f;
        var allowed = (int)Math.Floor(fpr * descending.Length);
        if (allowed >= descending.Length) return 0f;
        return Math.Min(1f, MathF.BitIncrement(descending[allowed]));
    }

    /// <summary>Folds stratified by (source, label); inside a stratum texts are ordered by a hash of their features, so input order does not matter.</summary>
    public static int[] AssignFolds(IReadOnlyList<Example> examples, int folds)
    {
        if (folds < 2) throw new ArgumentOutOfRangeException(nameof(folds), folds, $"folds must be at least 2; got {folds}");
        var assignment = new int[examples.Count];
        var strata = Enumerable.Range(0, examples.Count).GroupBy(i => (examples[i].Source, examples[i].IsAttack)).OrderBy(g => g.Key.Source, StringComparer.Ordinal).ThenBy(g => g.Key.IsAttack);
        foreach (var stratum in strata)
        {
            var k = 0;
            foreach (var i in stratum.OrderBy(i => Fingerprint(examples[i])).ThenBy(i => i)) assignment[i] = k++ % folds;
        }
        return assignment;
    }

    /// <summary>
    /// Multiple-instance logistic regression by AdaGrad: each step updates on the text's
    /// highest-scoring instance (for an attack, the segment most like one; for a benign text, the
    /// one most at risk of a false alarm). Returns float weights (what the model file stores) and bias.
    /// </summary>
    public (float[] Weights, float Bias) Fit(int dimension, IReadOnlyList<Example> examples)
    {
        var w = new double[dimension];
        var g2 = new double[dimension];
        double b = 0, gb2 = 0;
        var positives = examples.Count(e => e.IsAttack);
        var negatives = examples.Count - positives;
        // Balanced class weights: attacks are a sixth of the data, and missing one costs as much as a false alarm.
        var wPos = positives == 0 ? 0 : examples.Count / (2.0 * positives);
        var wNeg = negatives == 0 ? 0 : examples.Count / (2.0 * negatives);
        var order = Enumerable.Range(0, examples.Count).ToArray();
        var rng = new SplitMix64(Options.Seed);
        for (var epoch = 0; epoch < Options.Epochs; epoch++)
        {
            for (var i = order.Length - 1; i > 0; i--)
            {
                var j = (int)(rng.Next() % (ulong)(i + 1));
                (order[i], order[j]) = (order[j], order[i]);
            }
            foreach (var index in order)
            {
                var e = examples[index];
                var z = double.NegativeInfinity;
                var x = e.Instances[0];
                foreach (var instance in e.Instances)
                {
                    var zi = b;
                    for (var k = 0; k < instance.Indices.Length; k++) zi += w[instance.Indices[k]] * instance.Values[k];
                    if (zi > z) (z, x) = (zi, instance);
                }
                var error = (InjectionModel.Sigmoid(z) - (e.IsAttack ? 1 : 0)) * (e.IsAttack ? wPos : wNeg);
                for (var k = 0; k < x.Indices.Length; k++)
                {
                    var f = x.Indices[k];
                    var grad = error * x.Values[k] + Options.L2 * w[f];
                    g2[f] += grad * grad;
                    w[f] -= Options.LearningRate * grad / (Math.Sqrt(g2[f]) + 1e-8);
                }
                gb2 += error * error;
                b -= Options.LearningRate * error / (Math.Sqrt(gb2) + 1e-8);
            }
        }
        return (w.Select(x => (float)x).ToArray(), (float)b);
    }

    private static ulong Fingerprint(Example e)
    {
        var h = 14695981039346656037ul;
        foreach (var i in e.Instances[0].Indices) h = (h ^ (uint)i) * 1099511628211ul;
        return h;
    }

    /// <summary>SplitMix64: a fixed, documented generator, so shuffles never change with the runtime's <see cref="Random"/>.</summary>
    private sealed class SplitMix64(ulong seed)
    {
        private ulong _state = seed;

        public ulong Next()
        {
            var z = _state += 0x9E3779B97F4A7C15ul;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ul;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBul;
            return z ^ (z >> 31);
        }
    }
}
