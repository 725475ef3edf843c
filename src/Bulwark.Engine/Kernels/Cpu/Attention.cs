
namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// Causal attention of one query over cached keys/values laid out [position][kvHeads × headDim],
/// query heads sharing KV heads in groups (GQA/MQA): scores, a softmax shifted by the maximum and
/// the weighted sum of the values, each by <see cref="AttentionKernels"/>. The scalar twin is
/// <see cref="Reference.Attention"/>.
/// </summary>
public static class Attention
{
    /// <param name="scores">Scratch of at least <paramref name="positions"/> floats.</param>
    public static void Attend(ReadOnlySpan<float> query, ReadOnlySpan<float> keys, ReadOnlySpan<float> values,
        int positions, int headCount, int kvHeadCount, int headDim, Span<float> scores, Span<float> output) =>
        AttendHeads(query, keys, values, positions, 0, headCount, headCount, kvHeadCount, headDim, scores, output);

    /// <summary>As <see cref="Attend"/> for query heads [first, end) only (one work item of a parallel decode step).</summary>
    public static unsafe void AttendHeads(ReadOnlySpan<float> query, ReadOnlySpan<float> keys, ReadOnlySpan<float> values,
        int positions, int first, int end, int headCount, int kvHeadCount, int headDim, Span<float> scores, Span<float> output)
    {
        var kvLength = kvHeadCount * headDim;
        var group = headCount / kvHeadCount;
        if (positions < 1 || (long)positions * kvLength > Math.Min(keys.Length, values.Length) || scores.Length < positions
            || query.Length < headCount * headDim || output.Length < headCount * headDim || (uint)first > (uint)end || end > headCount)
            throw new ArgumentException($"attention over {positions} positions of {headCount} heads × {headDim} needs larger buffers");
        var scale = 1f / MathF.Sqrt(headDim);
        var isa = KernelIsa.Active;
        fixed (float* q = query)
        fixed (float* k = keys)
        fixed (float* v = values)
        fixed (float* s = scores)
        fixed (float* o = output)
        {
            for (var head = first; head < end; head++)
            {
                var kvOffset = head / group * headDim;
                var max = AttentionKernels.Scores(q + head * headDim, k + kvOffset, kvLength, positions, headDim, scale, s, isa);
                var sum = AttentionKernels.Exponentials(s, positions, max, isa);
                var oh = o + head * headDim;
                AttentionKernels.WeightedSum(v + kvOffset, kvLength, positions, headDim, s, 0, oh, isa);
                VectorOps.Scale(new Span<float>(oh, headDim), 1f / sum);
            }
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
}
