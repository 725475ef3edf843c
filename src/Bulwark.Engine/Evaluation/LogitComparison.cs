namespace Bulwark.Engine.Evaluation;

/// <summary>
/// How far one logit row is from another: cosine similarity, whether the top token agrees, and
/// the KL divergence of the candidate's next-token distribution from the reference's. Computed in
/// double precision with max-subtracted softmax so large logits do not overflow.
/// </summary>
public static class LogitComparison
{
    public static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        CheckLengths(a, b);
        double dot = 0, na = 0, nb = 0;
        for (var i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }
        if (na == 0 && nb == 0) return 1;
        if (na == 0 || nb == 0) return 0;
        return dot / (Math.Sqrt(na) * Math.Sqrt(nb));
    }

    /// <summary>Index of the largest value; the first one on ties.</summary>
    public static int Argmax(ReadOnlySpan<float> values)
    {
        if (values.IsEmpty) throw new ArgumentException("no values", nameof(values));
        var best = 0;
        for (var i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }

    /// <summary>KL(P‖Q) in nats, where P = softmax(<paramref name="reference"/>) and Q = softmax(<paramref name="candidate"/>).</summary>
    public static double KlDivergence(ReadOnlySpan<float> reference, ReadOnlySpan<float> candidate)
    {
        CheckLengths(reference, candidate);
        var (maxP, logZp) = LogPartition(reference);
        var (maxQ, logZq) = LogPartition(candidate);
        double kl = 0;
        for (var i = 0; i < reference.Length; i++)
        {
            var logP = reference[i] - maxP - logZp;
            var logQ = candidate[i] - maxQ - logZq;
            kl += Math.Exp(logP) * (logP - logQ);
        }
        return Math.Max(0, kl);
    }

    private static (double Max, double LogZ) LogPartition(ReadOnlySpan<float> logits)
    {
        double max = double.NegativeInfinity;
        foreach (var v in logits) max = Math.Max(max, v);
        double sum = 0;
        foreach (var v in logits) sum += Math.Exp(v - max);
        return (max, Math.Log(sum));
    }

    private static void CheckLengths(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"logit rows differ in length: {a.Length} vs {b.Length}");
        if (a.IsEmpty) throw new ArgumentException("logit rows are empty");
    }
}
