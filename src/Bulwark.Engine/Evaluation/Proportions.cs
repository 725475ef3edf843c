namespace Bulwark.Engine.Evaluation;

/// <summary>A proportion (or a difference of two) with the bounds of its confidence interval.</summary>
public sealed record ProportionInterval(double Estimate, double Lower, double Upper);

/// <summary>
/// The same n items judged twice (once per model), each time yes or no: <see cref="Both"/> yes under
/// both, <see cref="FirstOnly"/> yes under the first only, <see cref="SecondOnly"/> under the second
/// only, <see cref="Neither"/>. The discordant cells carry the difference between the two.
/// </summary>
public sealed record PairedCounts(int Both, int FirstOnly, int SecondOnly, int Neither)
{
    public int Total => Both + FirstOnly + SecondOnly + Neither;

    /// <summary>Tallies paired outcomes.</summary>
    public static PairedCounts Of(IEnumerable<(bool First, bool Second)> pairs)
    {
        int both = 0, first = 0, second = 0, neither = 0;
        foreach (var (a, b) in pairs)
        {
            if (a && b) both++;
            else if (a) first++;
            else if (b) second++;
            else neither++;
        }
        return new PairedCounts(both, first, second, neither);
    }
}

/// <summary>
/// Confidence intervals for rates measured on a probe set of modest size, where the normal
/// (Wald) interval is known to misbehave near 0 and 1 — exactly where refusal rates live.
/// </summary>
public static class Proportions
{
    /// <summary>The two-sided normal quantile for a confidence level, e.g. 1.95996 for 0.95.</summary>
    public static double Z(double confidence)
    {
        if (!(confidence is > 0.5 and < 1)) throw new ArgumentOutOfRangeException(nameof(confidence), confidence, "must be between 0.5 and 1 (exclusive)");
        return NormalQuantile(1 - (1 - confidence) / 2);
    }

    /// <summary>
    /// Wilson's score interval for <paramref name="successes"/> out of <paramref name="n"/> (Wilson 1927;
    /// method 3 of Newcombe 1998, Statist. Med. 17:857): the p whose score test does not reject at z.
    /// </summary>
    public static ProportionInterval Wilson(int successes, int n, double z)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "needs at least one trial");
        if (successes < 0 || successes > n) throw new ArgumentOutOfRangeException(nameof(successes), successes, $"must be between 0 and {n}");
        var p = (double)successes / n;
        var z2 = z * z;
        var denominator = 1 + z2 / n;
        var centre = (p + z2 / (2 * n)) / denominator;
        var half = z * Math.Sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / denominator;
        // At 0 and n the interval touches the bound exactly; rounding must not push it past.
        var lower = successes == 0 ? 0 : Math.Max(0, centre - half);
        var upper = successes == n ? 1 : Math.Min(1, centre + half);
        return new ProportionInterval(p, lower, upper);
    }

    /// <summary>
    /// The difference p₁ − p₂ between the "yes" rates of two judgements of the same items, with
    /// Newcombe's square-and-add interval for paired data (Newcombe 1998, Statist. Med. 17:2635,
    /// method 10): the two Wilson intervals combined with the correlation φ of the pairs, where φ's
    /// numerator ad − bc is shrunk by n/2 towards 0 when positive (and set to 0 when it would cross).
    /// </summary>
    public static ProportionInterval PairedDifference(PairedCounts counts, double z)
    {
        var n = counts.Total;
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(counts), "needs at least one pair");
        var firstYes = counts.Both + counts.FirstOnly;
        var secondYes = counts.Both + counts.SecondOnly;
        var p1 = (double)firstYes / n;
        var p2 = (double)secondYes / n;
        var (_, l1, u1) = Wilson(firstYes, n, z);
        var (_, l2, u2) = Wilson(secondYes, n, z);

        double phi = 0;
        var product = (double)firstYes * (n - firstYes) * secondYes * (n - secondYes);
        if (product > 0)
        {
            var adbc = (double)counts.Both * counts.Neither - (double)counts.FirstOnly * counts.SecondOnly;
            var corrected = adbc > n / 2.0 ? adbc - n / 2.0 : adbc < 0 ? adbc : 0;
            phi = corrected / Math.Sqrt(product);
        }
        var difference = p1 - p2;
        var below = Math.Sqrt(Math.Max(0, Square(p1 - l1) - 2 * phi * (p1 - l1) * (u2 - p2) + Square(u2 - p2)));
        var above = Math.Sqrt(Math.Max(0, Square(p2 - l2) - 2 * phi * (p2 - l2) * (u1 - p1) + Square(u1 - p1)));
        return new ProportionInterval(difference, Math.Max(-1, difference - below), Math.Min(1, difference + above));
    }

    private static double Square(double x) => x * x;

    /// <summary>
    /// Inverse of the standard normal distribution function: Acklam's rational approximation, relative
    /// error below 1.2e-9 over (0, 1) — far below what a rate measured on a few hundred probes can tell.
    /// </summary>
    internal static double NormalQuantile(double p)
    {
        if (!(p is > 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(p), p, "must be between 0 and 1 (exclusive)");
        double[] a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00];
        double[] b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01];
        double[] c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00];
        double[] d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00];
        const double low = 0.02425;
        double x;
        if (p < low)
        {
            var q = Math.Sqrt(-2 * Math.Log(p));
            x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        }
        else if (p <= 1 - low)
        {
            var q = p - 0.5;
            var r = q * q;
            x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
        }
        else
        {
            var q = Math.Sqrt(-2 * Math.Log(1 - p));
            x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        }
        return x;
    }
}
