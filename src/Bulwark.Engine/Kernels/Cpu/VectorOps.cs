using System.Numerics;
using System.Runtime.Intrinsics;
using Bulwark.Engine.Kernels.Reference;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// The element-wise steps of a decoder layer with SIMD: RMSNorm, residual add, SwiGLU, RoPE.
/// Each has its scalar twin in <see cref="Reference"/> and a test holding them together.
/// </summary>
public static class VectorOps
{
    /// <summary>RMSNorm as <see cref="RmsNorm.Apply"/>; output may alias x.</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float epsilon, Span<float> output)
    {
        var n = x.Length;
        var acc = Vector<float>.Zero;
        var i = 0;
        for (; i + Vector<float>.Count <= n; i += Vector<float>.Count)
        {
            var v = new Vector<float>(x.Slice(i));
            acc += v * v;
        }
        var sumOfSquares = Vector.Sum(acc);
        for (; i < n; i++) sumOfSquares += x[i] * x[i];
        var scale = 1f / MathF.Sqrt(sumOfSquares / n + epsilon);
        for (i = 0; i + Vector<float>.Count <= n; i += Vector<float>.Count)
            (new Vector<float>(weight.Slice(i)) * (new Vector<float>(x.Slice(i)) * scale)).CopyTo(output.Slice(i));
        for (; i < n; i++) output[i] = weight[i] * (scale * x[i]);
    }

    /// <summary>x += delta.</summary>
    public static void Add(Span<float> x, ReadOnlySpan<float> delta)
    {
        var i = 0;
        for (; i + Vector<float>.Count <= x.Length; i += Vector<float>.Count)
            (new Vector<float>(x.Slice(i)) + new Vector<float>(delta.Slice(i))).CopyTo(x.Slice(i));
        for (; i < x.Length; i++) x[i] += delta[i];
    }

    /// <summary>x *= factor.</summary>
    public static void Scale(Span<float> x, float factor)
    {
        var i = 0;
        var f = new Vector<float>(factor);
        for (; i + Vector<float>.Count <= x.Length; i += Vector<float>.Count)
            (new Vector<float>(x.Slice(i)) * f).CopyTo(x.Slice(i));
        for (; i < x.Length; i++) x[i] *= factor;
    }

    /// <summary>gate = silu(gate) ⊙ up, as <see cref="Silu.GateInPlace"/>, with a vectorized exp.</summary>
    public static void SiluGate(Span<float> gate, ReadOnlySpan<float> up)
    {
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var one = Vector256<float>.One;
            for (; i + 8 <= gate.Length; i += 8)
            {
                var g = Vector256.Create<float>(gate.Slice(i, 8));
                var u = Vector256.Create<float>(up.Slice(i, 8));
                (g / (one + Vector256.Exp(-g)) * u).CopyTo(gate.Slice(i, 8));
            }
        }
        for (; i < gate.Length; i++)
        {
            var g = gate[i];
            gate[i] = g / (1f + MathF.Exp(-g)) * up[i];
        }
    }

    /// <summary>
    /// RoPE of every head in <paramref name="vector"/>, as <see cref="Rope.Apply"/>, but with each
    /// pair's cos/sin computed once per position instead of once per head. <paramref name="cosSin"/>
    /// needs headDim floats of scratch.
    /// </summary>
    public static void Rope(Span<float> vector, int headDim, int position, ReadOnlySpan<float> inverseFrequencies,
        RopeLayout layout, Span<float> cosSin)
    {
        var half = headDim / 2;
        var cos = cosSin[..half];
        var sin = cosSin.Slice(half, half);
        for (var i = 0; i < half; i++)
        {
            var angle = position * inverseFrequencies[i];
            cos[i] = MathF.Cos(angle);
            sin[i] = MathF.Sin(angle);
        }
        for (var start = 0; start < vector.Length; start += headDim)
        {
            var h = vector.Slice(start, headDim);
            if (layout == RopeLayout.AdjacentPairs)
            {
                for (var i = 0; i < half; i++)
                {
                    var x0 = h[2 * i];
                    var x1 = h[2 * i + 1];
                    h[2 * i] = x0 * cos[i] - x1 * sin[i];
                    h[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
                }
            }
            else
            {
                for (var i = 0; i < half; i++)
                {
                    var x0 = h[i];
                    var x1 = h[i + half];
                    h[i] = x0 * cos[i] - x1 * sin[i];
                    h[i + half] = x0 * sin[i] + x1 * cos[i];
                }
            }
        }
    }
}
