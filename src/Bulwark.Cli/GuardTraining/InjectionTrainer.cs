using Bulwark.Server.Guardrails.Input;
using Bulwark.Server.Guardrails;
using Bulwark.Server.Requests;
namespace Bulwark.Cli.GuardTraining;

/// <summary>Settings of <see cref="InjectionTrainer"/>; the defaults produce the shipped model.</summary>
public sealed record InjectionTrainingOptions
{
    public int HashBits { get; init; } = 15;
    public InjectionFeatureLayout Layout { get; init; } = InjectionFeatureLayout.SegmentsOnly | InjectionFeatureLayout.SegmentRules | InjectionFeatureLayout.DocumentContext;

    /// <summary>Return the average of the weights over all steps of the last half of training instead of the last weights (averaged SGD: less sensitive to the order of the last examples).</summary>
    public bool Average { get; init; }

    /// <summary>Keep rule weights non-negative (a rule hit is never evidence of innocence).</summary>
    public bool NonNegativeRules { get; init; } = true;

    /// <summary>Multiplies the weight of attacks in the loss on top of class balancing (1 = balanced).</summary>
    public double PositiveWeight { get; init; } = 1;

    /// <summary>Multiplies the weight of benign texts from sources that also hold attacks (their twins), 1 = plain class balancing.</summary>
    public double MixedNegativeWeight { get; init; } = 4;

    /// <summary>When above 0, every instance of a benign text (not only its highest-scoring one) is also updated as benign, with this share of its weight.</summary>
    public double NegativeInstanceWeight { get; init; } = 1;
    public int MinN { get; init; } = 3;
    public int MaxN { get; init; } = 5;
    public int Epochs { get; init; } = 20;
    public double LearningRate { get; init; } = 0.5;
    public double L2 { get; init; } = 1e-2;
    public int Folds { get; init; } = 5;

    /// <summary>False-positive rate the flag threshold is calibrated to on out-of-fold scores (below the 0.05 goal, for margin).</summary>
    public double FlagFpr { get; init; } = 0.035;

    /// <summary>Cross-validations (training seeds <see cref="Seed"/>, +1, …) whose out-of-fold scores are pooled to calibrate the thresholds.</summary>
    public int CalibrationRuns { get; init; } = 3;

    /// <summary>False-positive rate the block threshold is calibrated to.</summary>
    public double BlockFpr { get; init; } = 0.01;

    public ulong Seed { get; init; } = 20261126;

    /// <summary>ReLU units of the hidden layer added to the linear model (0: a purely linear model).</summary>
    public int HiddenUnits { get; init; }

    /// <summary>AdaGrad step size of the hidden layer's weights.</summary>
    public double HiddenLearningRate { get; init; } = 0.3;

    /// <summary>L2 penalty of the hidden layer's weights (applied to the rows an instance touches, like the linear part's).</summary>
    public double HiddenL2 { get; init; } = 1e-2;

    /// <summary>Hidden input weights start uniform in ±this (seeded), output weights in ±1/√units.</summary>
    public double HiddenInitScale { get; init; } = 0.1;

    /// <summary>Train the linear part too (false: only the hidden layer and the bias, a plain one-hidden-layer network).</summary>
    public bool Wide { get; init; } = true;
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
    public sealed record Example(List<(int[] Indices, float[] Values)> Instances, bool IsAttack, string Source, GuardDecision Floor)
    {
        /// <summary>Near-duplicate group (see <see cref="GroupNearDuplicates"/>): texts of one group always share a fold.</summary>
        public int Group { get; set; } = -1;
    }

    public InjectionFeatures NewFeatures() =>
        new(Options.HashBits, Options.MinN, Options.MaxN, InjectionRules.Default.Select(r => r.Id).ToArray(), Options.Layout);

    public static List<Example> Prepare(InjectionFeatures features, IEnumerable<LabeledText> texts)
    {
        var examples = new List<Example>();
        var segments = new List<string[]>();
        foreach (var t in texts)
        {
            var scan = ScanText.From(t.Text);
            var hits = InjectionRules.Hits(t.Text, scan);
            examples.Add(new Example(features.Instances(scan.Normalized, hits), t.IsAttack, t.Source, InjectionScanner.Floor(hits)));
            segments.Add(ScanText.Segments(scan.Normalized).Distinct(StringComparer.Ordinal).ToArray());
        }
        GroupNearDuplicates(examples, segments);
        return examples;
    }

    /// <summary>Segments shared by more texts than this are boilerplate (a code fence, a table rule) and do not link texts.</summary>
    private const int CommonSegment = 16;

    /// <summary>
    /// Puts texts of one source that share at least half of the smaller one's segments into one
    /// group (union-find), so cross-validation never trains on a document and scores its
    /// near-copy: BIPIA holds every document once clean and once with an instruction inserted,
    /// and deepset reuses the same questions in many of its texts. Without this the figures
    /// measure memory of the other copy, not detection.
    /// </summary>
    public static void GroupNearDuplicates(IReadOnlyList<Example> examples, IReadOnlyList<string[]> segments)
    {
        var parent = Enumerable.Range(0, examples.Count).ToArray();
        int Find(int i)
        {
            while (parent[i] != i) i = parent[i] = parent[parent[i]];
            return i;
        }
        var bySegment = new Dictionary<(string Source, string Segment), List<int>>();
        for (var i = 0; i < examples.Count; i++)
        {
            foreach (var segment in segments[i])
            {
                var key = (examples[i].Source, segment);
                if (!bySegment.TryGetValue(key, out var list)) bySegment[key] = list = [];
                list.Add(i);
            }
        }
        for (var i = 0; i < examples.Count; i++)
        {
            var shared = new Dictionary<int, int>();
            foreach (var segment in segments[i])
            {
                var list = bySegment[(examples[i].Source, segment)];
                if (list.Count > CommonSegment) continue;
                foreach (var j in list)
                {
                    if (j > i) shared[j] = shared.GetValueOrDefault(j) + 1;
                }
            }
            foreach (var (j, count) in shared)
            {
                if (2 * count >= Math.Min(segments[i].Length, segments[j].Length)) parent[Find(i)] = Find(j);
            }
        }
        for (var i = 0; i < examples.Count; i++) examples[i].Group = Find(i);
    }

    /// <summary>
    /// The model trained on every text, thresholds calibrated by cross-validation, and the
    /// cross-validated figures at those thresholds. Texts are put in a canonical order first, so
    /// the bytes depend on the set of texts, not on the order of the file.
    /// </summary>
    public (InjectionModel Model, InjectionCrossValidation CrossValidation) Train(IReadOnlyList<LabeledText> texts)
    {
        var features = NewFeatures();
        var examples = Prepare(features, Canonical(texts));
        var scores = CrossValidatedScores(features, examples, out _);
        var (flag, block) = CalibrateOver(features, examples, scores);
        var model = Fit(features, examples).WithThresholds(flag, block);
        return (model, InjectionCrossValidation.Of(new InjectionScanner(model), examples, scores));
    }

    private static List<LabeledText> Canonical(IEnumerable<LabeledText> texts) =>
        texts.OrderBy(t => t.Source, StringComparer.Ordinal).ThenBy(t => t.IsAttack).ThenBy(t => t.Text, StringComparer.Ordinal).ToList();

    /// <summary>
    /// Honest k-fold cross-validation of the whole recipe: for each fold, the thresholds are
    /// calibrated by an inner cross-validation on the other folds only, the model is trained on
    /// the other folds, and the fold is scored at those thresholds. Nothing about the scored fold
    /// (not even its score distribution) reaches its model or thresholds.
    /// </summary>
    public InjectionNestedCrossValidation NestedCrossValidate(IReadOnlyList<LabeledText> texts)
    {
        var features = NewFeatures();
        var examples = Prepare(features, Canonical(texts));
        var folds = AssignFolds(examples, Options.Folds);
        var flagThresholds = new float[Options.Folds];
        var blockThresholds = new float[Options.Folds];
        var scores = new double[examples.Count];
        var flagged = new bool[examples.Count];
        var blocked = new bool[examples.Count];
        for (var f = 0; f < Options.Folds; f++)
        {
            var fold = f;
            var train = examples.Where((_, i) => folds[i] != fold).ToList();
            var inner = CrossValidatedScores(features, train, out _);
            var (flag, block) = CalibrateOver(features, train, inner);
            var scanner = new InjectionScanner(Fit(features, train).WithThresholds(flag, block));
            (flagThresholds[f], blockThresholds[f]) = (flag, block);
            for (var i = 0; i < examples.Count; i++)
            {
                if (folds[i] != fold) continue;
                scores[i] = scanner.Model.Score(examples[i].Instances);
                flagged[i] = InjectionEvaluation.Positive(scanner.Decide(scores[i], examples[i].Floor, GuardPolicy.Flag), GuardPolicy.Flag);
                blocked[i] = InjectionEvaluation.Positive(scanner.Decide(scores[i], examples[i].Floor, GuardPolicy.Block), GuardPolicy.Block);
            }
        }
        return new InjectionNestedCrossValidation(flagThresholds, blockThresholds,
            InjectionEvaluation.Of(examples.Select((e, i) => (e.Source, flagged[i], e.IsAttack))),
            InjectionEvaluation.Of(examples.Select((e, i) => (e.Source, blocked[i], e.IsAttack))));
    }

    /// <summary>
    /// Leave-one-source-out evaluation of the recipe (<see cref="GuardTraining.LeaveOneSourceOut"/>): each
    /// source scored by a model trained on the others, at thresholds calibrated on inner
    /// leave-one-source-out scores of the others (training seeds S, S+1, … for
    /// <see cref="InjectionTrainingOptions.CalibrationRuns"/> runs pooled).
    /// </summary>
    public LeaveOneSourceOutResult HoldOutSources(IReadOnlyList<LabeledText> texts)
    {
        var features = NewFeatures();
        var examples = Prepare(features, Canonical(texts));
        var items = examples.Select(e => new HoldoutItem(e.Source, e.IsAttack, e.Floor)).ToArray();
        return new LeaveOneSourceOut(Options.FlagFpr, Options.BlockFpr, Options.CalibrationRuns).Run(items, (training, run) =>
        {
            var model = new InjectionTrainer(Options with { Seed = Options.Seed + (ulong)run }).Fit(features, training.Select(i => examples[i]).ToList());
            return i => model.Score(examples[i].Instances);
        });
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
            var model = Fit(features, train);
            for (var i = 0; i < examples.Count; i++)
            {
                if (folds[i] == fold) scores[i] = model.Score(examples[i].Instances);
            }
        }
        return scores;
    }

    /// <summary>
    /// <see cref="Calibrate"/> on the out-of-fold scores of <see cref="InjectionTrainingOptions.CalibrationRuns"/>
    /// cross-validations pooled (<paramref name="first"/> is the run with <see cref="InjectionTrainingOptions.Seed"/>):
    /// one run's quantile moves with its shuffle as much as the recipe's figures do.
    /// </summary>
    private (float Flag, float Block) CalibrateOver(InjectionFeatures features, IReadOnlyList<Example> examples, double[] first)
    {
        if (Options.CalibrationRuns <= 1) return Calibrate(first, examples);
        var scores = new List<double>(first);
        var pooled = new List<Example>(examples);
        for (var run = 1; run < Options.CalibrationRuns; run++)
        {
            scores.AddRange(new InjectionTrainer(Options with { Seed = Options.Seed + (ulong)run }).CrossValidatedScores(features, examples, out _));
            pooled.AddRange(examples);
        }
        return Calibrate(scores, pooled);
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

    /// <summary>
    /// Folds stratified by (source, label) with near-duplicate groups kept whole: a group counts
    /// as an attack when any member is one; inside a stratum groups are ordered by a hash of their
    /// members' features, so input order does not matter.
    /// </summary>
    public static int[] AssignFolds(IReadOnlyList<Example> examples, int folds)
    {
        if (folds < 2) throw new ArgumentOutOfRangeException(nameof(folds), folds, $"folds must be at least 2; got {folds}");
        var assignment = new int[examples.Count];
        var groups = Enumerable.Range(0, examples.Count).GroupBy(i => examples[i].Group < 0 ? -1 - i : examples[i].Group)
            .Select(g => (Members: g.ToArray(), Source: examples[g.First()].Source, IsAttack: g.Any(i => examples[i].IsAttack),
                Fingerprint: g.Select(i => Fingerprint(examples[i])).Order().First()));
        var strata = groups.GroupBy(g => (g.Source, g.IsAttack)).OrderBy(s => s.Key.Source, StringComparer.Ordinal).ThenBy(s => s.Key.IsAttack);
        foreach (var stratum in strata)
        {
            var k = 0;
            foreach (var group in stratum.OrderBy(g => g.Fingerprint).ThenBy(g => g.Members[0]))
            {
                foreach (var i in group.Members) assignment[i] = k % folds;
                k++;
            }
        }
        return assignment;
    }

    /// <summary>
    /// Multiple-instance logistic regression by AdaGrad: each step updates on the text's
    /// highest-scoring instance (for an attack, the segment most like one; for a benign text, the
    /// one most at risk of a false alarm). With <see cref="InjectionTrainingOptions.HiddenUnits"/>
    /// a layer of ReLU units is trained jointly (its output added to the linear logit). Returns the
    /// model with float weights (what the file stores) and placeholder thresholds of 0.5.
    /// </summary>
    public InjectionModel Fit(InjectionFeatures features, IReadOnlyList<Example> examples)
    {
        var dimension = features.Dimension;
        // Rule features are kept non-negative (projected after each step): a rule hit is evidence
        // for an attack or nothing, never evidence of innocence an attacker could add on purpose.
        var rulesFrom = features.Buckets;
        var rulesTo = features.Buckets + features.RuleIds.Count;
        var w = new double[dimension];
        var g2 = new double[dimension];
        double b = 0, gb2 = 0;
        var positives = examples.Count(e => e.IsAttack);
        var negatives = examples.Count - positives;
        // Balanced class weights: attacks are a sixth of the data, and missing one costs as much as a false alarm.
        var wPos = positives == 0 ? 0 : Options.PositiveWeight * examples.Count / (2.0 * positives);
        var wNeg = negatives == 0 ? 0 : examples.Count / (2.0 * negatives);
        // A benign text from a source that also holds attacks (BIPIA's clean twin of an attacked document, deepset's
        // benign questions) weighs MixedNegativeWeight times more: class balancing alone makes the attacked copy ~5× heavier
        // than its clean twin, so the rows they share were learnt as attack evidence (BIPIA FPR 0.21 → 0.01).
        var mixedSources = examples.Where(e => e.IsAttack).Select(e => e.Source).ToHashSet(StringComparer.Ordinal);
        var weight = examples.Select(e => e.IsAttack ? wPos : mixedSources.Contains(e.Source) ? wNeg * Options.MixedNegativeWeight : wNeg).ToArray();
        // Averaging (Daumé's trick, exact for sparse updates): u accumulates step × change, the mean is w − u / steps.
        var u = Options.Average ? new double[dimension] : null;
        double ub = 0;
        long step = 1;
        var averageFrom = Options.Epochs / 2;
        var order = Enumerable.Range(0, examples.Count).ToArray();
        var rng = new SplitMix64(Options.Seed);
        var epoch = 0;
        // The hidden layer: input weights a row of H per feature, biases, output weights; AdaGrad accumulators beside each.
        var units = Options.HiddenUnits;
        var hw = new double[dimension * units];
        var hwG2 = new double[hw.Length];
        var hb = new double[units];
        var hbG2 = new double[units];
        var hv = new double[units];
        var hvG2 = new double[units];
        var act = new double[units];
        var delta = new double[units];
        if (units > 0)
        {
            // Perf and determinism: the initial weights come from the same seeded generator, before any shuffle.
            var init = new SplitMix64(Options.Seed ^ 0x5EED1A7Eul);
            for (var i = 0; i < hw.Length; i++) hw[i] = (init.NextDouble() * 2 - 1) * Options.HiddenInitScale;
            for (var j = 0; j < units; j++) hv[j] = (init.NextDouble() * 2 - 1) / Math.Sqrt(units);
        }
        double Logit((int[] Indices, float[] Values) instance)
        {
            var zi = b;
            for (var k = 0; k < instance.Indices.Length; k++) zi += w[instance.Indices[k]] * instance.Values[k];
            if (units == 0) return zi;
            for (var j = 0; j < units; j++) act[j] = hb[j];
            for (var k = 0; k < instance.Indices.Length; k++)
            {
                var row = instance.Indices[k] * units;
                double x = instance.Values[k];
                for (var j = 0; j < units; j++) act[j] += hw[row + j] * x;
            }
            for (var j = 0; j < units; j++)
            {
                if (act[j] > 0) zi += act[j] * hv[j];
            }
            return zi;
        }
        void Update((int[] Indices, float[] Values) x, double error)
        {
            if (units > 0)
            {
                Logit(x); // the activations of this instance under the current weights
                var lr = Options.HiddenLearningRate;
                var l2 = Options.HiddenL2;
                for (var j = 0; j < units; j++)
                {
                    var h = act[j] > 0 ? act[j] : 0;
                    delta[j] = act[j] > 0 ? error * hv[j] : 0;
                    var grad = error * h + l2 * hv[j];
                    hvG2[j] += grad * grad;
                    hv[j] -= lr * grad / (Math.Sqrt(hvG2[j]) + 1e-8);
                    hbG2[j] += delta[j] * delta[j];
                    hb[j] -= lr * delta[j] / (Math.Sqrt(hbG2[j]) + 1e-8);
                }
                for (var k = 0; k < x.Indices.Length; k++)
                {
                    var row = x.Indices[k] * units;
                    double xv = x.Values[k];
                    for (var j = 0; j < units; j++)
                    {
                        var grad = delta[j] * xv + l2 * hw[row + j];
                        hwG2[row + j] += grad * grad;
                        hw[row + j] -= lr * grad / (Math.Sqrt(hwG2[row + j]) + 1e-8);
                    }
                }
            }
            if (Options.Wide)
            {
                for (var k = 0; k < x.Indices.Length; k++)
                {
                    var f = x.Indices[k];
                    var grad = error * x.Values[k] + Options.L2 * w[f];
                    g2[f] += grad * grad;
                    var change = Options.LearningRate * grad / (Math.Sqrt(g2[f]) + 1e-8);
                    if (Options.NonNegativeRules && f >= rulesFrom && f < rulesTo && w[f] - change < 0) change = w[f];
                    w[f] -= change;
                    if (u is not null && epoch >= averageFrom) u[f] -= (step - 1) * change;
                }
            }
            gb2 += error * error;
            var deltaB = Options.LearningRate * error / (Math.Sqrt(gb2) + 1e-8);
            b -= deltaB;
            if (u is not null && epoch >= averageFrom)
            {
                ub -= (step - 1) * deltaB;
                step++;
            }
        }
        for (epoch = 0; epoch < Options.Epochs; epoch++)
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
                    var zi = Logit(instance);
                    if (zi > z) (z, x) = (zi, instance);
                }
                Update(x, (InjectionModel.Sigmoid(z) - (e.IsAttack ? 1 : 0)) * weight[index]);
                if (!e.IsAttack && Options.NegativeInstanceWeight > 0 && e.Instances.Count > 1)
                {
                    // Every instance of a benign text is benign (multiple-instance learning's negative bags), not only its highest.
                    foreach (var instance in e.Instances)
                    {
                        if (!ReferenceEquals(instance.Indices, x.Indices)) Update(instance, InjectionModel.Sigmoid(Logit(instance)) * weight[index] * Options.NegativeInstanceWeight);
                    }
                }
            }
        }
        if (u is not null && step > 1)
        {
            // Mean of w_t over the averaged steps t = 1..T: w_T − Σ (t − 1)·Δ_t / T.
            var steps = (double)(step - 1);
            for (var i = 0; i < dimension; i++) w[i] -= u[i] / steps;
            b -= ub / steps;
        }
        static float[] Floats(double[] values) => values.Select(x => (float)x).ToArray();
        var hidden = units == 0 ? null : new InjectionHiddenLayer(Floats(hw), Floats(hb), Floats(hv));
        return new InjectionModel(features, Floats(w), (float)b, 0.5f, 0.5f, hidden);
    }

    private static ulong Fingerprint(Example e)
    {
        var h = 14695981039346656037ul;
        foreach (var i in e.Instances[0].Indices.Order()) h = (h ^ (uint)i) * 1099511628211ul;
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

        /// <summary>Uniform in [0, 1) from the top 53 bits.</summary>
        public double NextDouble() => (Next() >> 11) * (1.0 / (1ul << 53));
    }
}

/// <summary>Figures of <see cref="InjectionTrainer.NestedCrossValidate"/>, with the thresholds each fold's training part chose.</summary>
public sealed record InjectionNestedCrossValidation(float[] FlagThresholds, float[] BlockThresholds, InjectionEvaluation Flag, InjectionEvaluation Block);
