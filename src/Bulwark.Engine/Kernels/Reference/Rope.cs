namespace Bulwark.Engine.Kernels.Reference;

/// <summary>Which elements of a head RoPE rotates together.</summary>
public enum RopeLayout
{
    /// <summary>(x[2i], x[2i+1]): llama2.c, and llama.cpp's "normal" mode used by GGUF llama files.</summary>
    AdjacentPairs,

    /// <summary>(x[i], x[i + d/2]): Hugging Face's rotate_half, and llama.cpp's "neox" mode (GGUF qwen2/qwen3).</summary>
    RotateHalf,
}

/// <summary>
/// Rotary position embedding of every head in a vector. <c>inverseFrequencies[i]</c> is the angle
/// per position of pair i (theta^(-2i/d), already divided by any scaling factor), so the same
/// kernel serves plain, linear and Llama 3 scaled RoPE.
/// </summary>
public static class Rope
{
    public static void Apply(Span<float> vector, int headDim, int position, ReadOnlySpan<float> inverseFrequencies, RopeLayout layout)
    {
        var half = headDim / 2;
        for (var head = 0; head * headDim < vector.Length; head++)
        {
            var h = vector.Slice(head * headDim, headDim);
            for (var i = 0; i < half; i++)
            {
                var angle = position * inverseFrequencies[i];
                var cos = MathF.Cos(angle);
                var sin = MathF.Sin(angle);
                var (a, b) = layout == RopeLayout.AdjacentPairs ? (2 * i, 2 * i + 1) : (i, i + half);
                var x0 = h[a];
                var x1 = h[b];
                h[a] = x0 * cos - x1 * sin;
                h[b] = x0 * sin + x1 * cos;
            }
        }
    }
}
