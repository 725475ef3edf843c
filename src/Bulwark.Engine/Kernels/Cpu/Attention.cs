using System.Numerics;
using System.Runtime.InteropServices;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// Causal attention of one query over cached keys/values laid out [position][kvHeads × headDim],
/// query heads sharing KV heads in groups (GQA/MQA): SIMD dot products for the scores, a softmax
/// shifted by the maximum, and a SIMD weighted sum of the values. The scalar twin is
/// <see cref="Reference.Attention"/>.
/// </summary>
public static class Attention
{
    /// <param name="scores">Scratch of at least <paramref name="positions"/> floats.</param>
    public static void Attend(ReadOnlySpan<float> query, ReadOnlySpan<float> keys, ReadOnlySpan<float> values,
        int positions, int headCount, int kvHeadCount, int headDim, Span<float> scores, Span<float> output) =>
        AttendHeads(query, keys, values, positions, 0, headCount, headCount, kvHeadCount, headDim, scores, output);

    /// <summary>As <see cref="Attend"/> for query heads [first, end) only (one work item of a parallel decode step).</summary>
    public static void AttendHeads(ReadOnlySpan<float> query, ReadOnlySpan<float> keys, ReadOnlySpan<float> values,
        int positions, int first, int end, int headCount, int kvHeadCount, int headDim, Span<float> scores, Span<float> output)
    {
        var kvLength = kvHeadCount * headDim;
        var group = headCount / kvHeadCount;
        var scale = 1f / MathF.Sqrt(headDim);
        var s = scores[..positions];
        for (var head = first; head < end; head++)
        {
            var q = query.Slice(head * headDim, headDim);
            var kvOffset = head / group * headDim;
            var max = float.NegativeInfinity;
            for (var t = 0; t < positions; t++)
            {
                var score = Dot(q, keys.Slice(t * kvLength + kvOffset, headDim)) * scale;
                s[t] = score;
                max = MathF.Max(max, score);
            }
            var sum = 0f;
            for (var t = 0; t < positions; t++)
            {
                var e = MathF.Exp(s[t] - max);
                s[t] = e;
                sum += e;
            }
            var inverse = 1f / sum;
            var o = output.Slice(head * headDim, headDim);
            o.Clear();
            for (var t = 0; t < positions; t++)
                AddScaled(o, values.Slice(t * kvLength + kvOffset, headDim), s[t] * inverse);
        }
    }

    [ThreadStatic] private static float[]? _scores;

    /// <summary>
    /// This thread's score scratch of at least <paramref name="length"/> floats, for attention run on
    /// worker threads; it grows by doubling, so a growing context does not reallocate every token.
    /// </summary>
    /// <remarks>
    /// A caller that is about to spread attention over the pool reserves its own first (it takes
    /// items too, but only sometimes: the workers may claim them all), so that which step first
    /// lands an item on the calling thread does not decide when its scratch is allocated.
    /// </remarks>
    public static float[] ScoreScratch(int length) =>
        _scores is { } s && s.Length >= length ? s : (_scores = new float[Math.Max(2 * length, 1024)]);

    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var acc = Vector<float>.Zero;
        var i = 0;
        var va = MemoryMarshal.Cast<float, Vector<float>>(a);
        var vb = MemoryMarshal.Cast<float, Vector<float>>(b);
        for (var j = 0; j < va.Length; j++) acc = Vector.FusedMultiplyAdd(va[j], vb[j], acc);
        i = va.Length * Vector<float>.Count;
        var sum = Vector.Sum(acc);
        for (; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }

    /// <summary>o += a · v.</summary>
    public static void AddScaled(Span<float> o, ReadOnlySpan<float> v, float a)
    {
        var vo = MemoryMarshal.Cast<float, Vector<float>>(o);
        var vv = MemoryMarshal.Cast<float, Vector<float>>(v);
        var va = new Vector<float>(a);
        for (var j = 0; j < vo.Length; j++) vo[j] = Vector.FusedMultiplyAdd(vv[j], va, vo[j]);
        for (var i = vo.Length * Vector<float>.Count; i < o.Length; i++) o[i] += a * v[i];
    }
}
