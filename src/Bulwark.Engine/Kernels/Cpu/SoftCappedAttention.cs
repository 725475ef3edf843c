using System.Numerics.Tensors;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// Attention whose scores are soft-capped before the softmax (Gemma 2): s = cap·tanh(scale·q·k / cap), as
/// llama.cpp's <c>build_attn_mha</c> and transformers' Gemma 2 compute them. One query token over positions
/// [first, last] of a contiguous or paged cache; scores, softmax and weighted sum in plain order, like
/// <see cref="Reference.Attention"/>. The tanh per score keeps it off the tiled and online-softmax kernels:
/// Gemma 2 runs here in both the session and the batched executor.
/// </summary>
internal static unsafe class SoftCappedAttention
{
    /// <param name="scores">Scratch of at least last − first + 1 floats.</param>
    public static void Attend(float* query, in TiledAttention.KvPlanes kv, int first, int last, int headCount, int kvHeadCount, int headDim,
        float scale, float cap, float* output, Span<float> scores)
    {
        var n = last - first + 1;
        if (first < 0 || n < 1 || scores.Length < n || !(cap > 0) || kvHeadCount < 1 || headCount % kvHeadCount != 0)
            throw new ArgumentException($"soft-capped attention over positions [{first}, {last}] with cap {cap} and {scores.Length} floats of scratch is not valid");
        long kvLength = (long)kvHeadCount * headDim;
        var group = headCount / kvHeadCount;
        for (var head = 0; head < headCount; head++)
        {
            var q = new ReadOnlySpan<float>(query + head * headDim, headDim);
            var kvOffset = head / group * headDim;
            var max = float.NegativeInfinity;
            for (var i = 0; i < n; i++)
            {
                var k = new ReadOnlySpan<float>(kv.Keys + kv.Offset(first + i, kvLength) + kvOffset, headDim);
                var s = cap * MathF.Tanh(TensorPrimitives.Dot(q, k) * scale / cap);
                scores[i] = s;
                max = Math.Max(max, s);
            }
            var sum = 0f;
            for (var i = 0; i < n; i++) sum += scores[i] = MathF.Exp(scores[i] - max);
            var o = new Span<float>(output + head * headDim, headDim);
            o.Clear();
            for (var i = 0; i < n; i++)
            {
                var v = new ReadOnlySpan<float>(kv.Values + kv.Offset(first + i, kvLength) + kvOffset, headDim);
                TensorPrimitives.MultiplyAdd(v, scores[i] / sum, o, o);
            }
        }
    }
}
