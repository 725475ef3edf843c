namespace Bulwark.Engine.Kernels.Reference;

/// <summary>In-place softmax, shifted by the maximum for numerical stability.</summary>
public static class Softmax
{
    public static void Apply(Span<float> x)
    {
        var max = float.NegativeInfinity;
        foreach (var v in x) max = MathF.Max(max, v);
        var sum = 0f;
        for (var i = 0; i < x.Length; i++)
        {
            x[i] = MathF.Exp(x[i] - max);
            sum += x[i];
        }
        for (var i = 0; i < x.Length; i++) x[i] /= sum;
    }
}
