namespace Bulwark.Engine.Model;

/// <summary>Operations on finished embedding vectors.</summary>
public static class EmbeddingVector
{
    /// <summary>Scales <paramref name="vector"/> to unit Euclidean length in place; a zero vector stays zero (as sentence-transformers' Normalize leaves it).</summary>
    public static void NormalizeL2(Span<float> vector)
    {
        // Perf: not on a hot path (once per input); double accumulation keeps long vectors exact enough for cosine ≥ 0.9999 checks.
        double sum = 0;
        foreach (var x in vector) sum += (double)x * x;
        if (sum == 0) return;
        var scale = (float)(1 / Math.Sqrt(sum));
        for (var i = 0; i < vector.Length; i++) vector[i] *= scale;
    }

    /// <summary>Cosine similarity of two vectors of the same length (0 when either is zero).</summary>
    public static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"vectors must have the same length; got {a.Length} and {b.Length}");
        double dot = 0, na = 0, nb = 0;
        for (var i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }
        return na == 0 || nb == 0 ? 0 : dot / Math.Sqrt(na * nb);
    }
}
