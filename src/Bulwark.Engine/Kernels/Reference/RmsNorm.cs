namespace Bulwark.Engine.Kernels.Reference;

/// <summary>RMSNorm: out = weight ⊙ x / sqrt(mean(x²) + eps).</summary>
public static class RmsNorm
{
    public static void Apply(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float epsilon, Span<float> output)
    {
        var sumOfSquares = 0f;
        for (var i = 0; i < x.Length; i++) sumOfSquares += x[i] * x[i];
        var scale = 1f / MathF.Sqrt(sumOfSquares / x.Length + epsilon);
        for (var i = 0; i < x.Length; i++) output[i] = weight[i] * (scale * x[i]);
    }
}
