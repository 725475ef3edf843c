namespace Bulwark.Cli.GuardTraining;

/// <summary>Confusion counts of a binary detector (positive = attack) and the figures derived from them.</summary>
public readonly record struct ClassifierMetrics(int TruePositives, int FalsePositives, int TrueNegatives, int FalseNegatives)
{
    public int N => TruePositives + FalsePositives + TrueNegatives + FalseNegatives;
    public int Positives => TruePositives + FalseNegatives;
    public int Negatives => FalsePositives + TrueNegatives;

    /// <summary>Of the texts called attacks, the share that are (1 when nothing was called an attack).</summary>
    public double Precision => TruePositives + FalsePositives == 0 ? 1 : (double)TruePositives / (TruePositives + FalsePositives);

    /// <summary>Of the attacks, the share caught (1 when there are none).</summary>
    public double Recall => Positives == 0 ? 1 : (double)TruePositives / Positives;

    public double F1 => Precision + Recall == 0 ? 0 : 2 * Precision * Recall / (Precision + Recall);

    /// <summary>Of the benign texts, the share called attacks (0 when there are none).</summary>
    public double FalsePositiveRate => Negatives == 0 ? 0 : (double)FalsePositives / Negatives;

    public ClassifierMetrics Add(bool predicted, bool actual) => (predicted, actual) switch
    {
        (true, true) => this with { TruePositives = TruePositives + 1 },
        (true, false) => this with { FalsePositives = FalsePositives + 1 },
        (false, false) => this with { TrueNegatives = TrueNegatives + 1 },
        (false, true) => this with { FalseNegatives = FalseNegatives + 1 },
    };

    public static ClassifierMetrics Of(IEnumerable<(bool Predicted, bool Actual)> outcomes)
    {
        var m = default(ClassifierMetrics);
        foreach (var (p, a) in outcomes) m = m.Add(p, a);
        return m;
    }

    /// <summary>One line; a figure with nothing to measure (recall without attacks, FPR without benign texts) prints as n/a.</summary>
    public override string ToString()
    {
        var predicted = TruePositives + FalsePositives;
        static string F(bool defined, double value) => defined ? value.ToString("F3", System.Globalization.CultureInfo.InvariantCulture) : "n/a";
        return $"n={N} precision={F(predicted > 0, Precision)} recall={F(Positives > 0, Recall)} f1={F(predicted > 0 && Positives > 0, F1)} " +
            $"fpr={F(Negatives > 0, FalsePositiveRate)} (tp={TruePositives} fp={FalsePositives} tn={TrueNegatives} fn={FalseNegatives})";
    }
}
