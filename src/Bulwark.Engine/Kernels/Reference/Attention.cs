namespace Bulwark.Engine.Kernels.Reference;

/// <summary>
/// Causal attention of one query over cached keys/values laid out [position][kvHeads × headDim]:
/// scores, softmax, weighted sum of values, strictly in order as llama2.c does. The twin of
/// <see cref="Cpu.Attention"/>.
/// </summary>
public static class Attention
{
    public static void Attend(ReadOnlySpan<float> query, ReadOnlySpan<float> keys, ReadOnlySpan<float> values,
        int positions, int headCount, int kvHeadCount, int headDim, Span<float> scores, Span<float> output)
    {
        var kvLength = kvHeadCount * headDim;
        var group = headCount / kvHeadCount;
        var scale = 1f / MathF.Sqrt(headDim);
        var s = scores[..positions];
        for (var head = 0; head < headCount; head++)
        {
            var q = query.Slice(head * headDim, headDim);
            var kvOffset = head / group * headDim;
            for (var t = 0; t < positions; t++)
                s[t] = MatVec.Dot(q, keys.Slice(t * kvLength + kvOffset, headDim)) * scale;
            Softmax.Apply(s);
            var o = output.Slice(head * headDim, headDim);
            o.Clear();
            for (var t = 0; t < positions; t++)
            {
                var v = values.Slice(t * kvLength + kvOffset, headDim);
                var a = s[t];
                for (var i = 0; i < headDim; i++) o[i] += a * v[i];
            }
        }
    }
}
