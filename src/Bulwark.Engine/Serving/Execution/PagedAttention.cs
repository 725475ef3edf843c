using System.Numerics;
using System.Runtime.CompilerServices;

namespace Bulwark.Engine.Serving.Execution;

/// <summary>
/// Causal attention of one query token over its sequence's KV blocks (PagedAttention), with an
/// online softmax that visits each block once: a running maximum and sum are rescaled when a
/// block raises the maximum, so no score array as long as the context is needed.
/// <see cref="Model.DecoderSteps.Attend"/> over a contiguous cache is the slow twin it is tested against.
/// </summary>
internal static unsafe class PagedAttention
{
    /// <param name="query">heads × head_dim floats of one token, after RoPE.</param>
    /// <param name="context">Positions [0, context) attended: the token's own position + 1.</param>
    /// <param name="output">heads × head_dim floats.</param>
    /// <param name="scores">At least block_size floats of scratch.</param>
    public static void Attend(KvBlockStore store, int layer, ReadOnlySpan<int> blockTable, float* query, int context,
        int headCount, int kvHeadCount, int headDim, float* output, Span<float> scores) =>
        Attend(store.Keys(layer), store.Values(layer), store.BlockSize, store.BlockStride, store.KvLength, blockTable,
            query, context, headCount, kvHeadCount, headDim, output, scores);

    /// <summary>As above, on one layer's key and value planes given as pointers (for worker threads).</summary>
    public static void Attend(float* keys, float* values, int blockSize, long blockStride, int kvLength, ReadOnlySpan<int> blockTable,
        float* query, int context, int headCount, int kvHeadCount, int headDim, float* output, Span<float> scores)
    {
        var group = headCount / kvHeadCount;
        var scale = 1f / MathF.Sqrt(headDim);
        var blocks = (context + blockSize - 1) / blockSize;
        for (var head = 0; head < headCount; head++)
        {
            var q = query + head * headDim;
            var o = output + head * headDim;
            var kvOffset = head / group * headDim;
            new Span<float>(o, headDim).Clear();
            var max = float.NegativeInfinity;
            var sum = 0f;
            for (var b = 0; b < blocks; b++)
            {
                var n = Math.Min(blockSize, context - b * blockSize);
                var blockStart = blockTable[b] * blockStride + kvOffset;
                var k = keys + blockStart;
                var blockMax = float.NegativeInfinity;
                for (var t = 0; t < n; t++)
                {
                    var s = Dot(q, k + t * kvLength, headDim) * scale;
                    scores[t] = s;
                    blockMax = MathF.Max(blockMax, s);
                }
                if (blockMax > max)
                {
                    // exp(-inf) = 0 on the first block, when the output and sum are still zero.
                    var correction = MathF.Exp(max - blockMax);
                    sum *= correction;
                    Scale(o, correction, headDim);
                    max = blockMax;
                }
                var v = values + blockStart;
                for (var t = 0; t < n; t++)
                {
                    var w = MathF.Exp(scores[t] - max);
                    sum += w;
                    AddScaled(o, v + t * kvLength, w, headDim);
                }
            }
            Scale(o, 1f / sum, headDim);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(float* a, float* b, int length)
    {
        var i = 0;
        var acc = Vector<float>.Zero;
        for (; i <= length - Vector<float>.Count; i += Vector<float>.Count)
            acc += Vector.Load(a + i) * Vector.Load(b + i);
        var sum = Vector.Sum(acc);
        for (; i < length; i++)
            sum += a[i] * b[i];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddScaled(float* destination, float* source, float factor, int length)
    {
        var i = 0;
        var f = new Vector<float>(factor);
        for (; i <= length - Vector<float>.Count; i += Vector<float>.Count)
            (Vector.Load(destination + i) + f * Vector.Load(source + i)).Store(destination + i);
        for (; i < length; i++)
            destination[i] += factor * source[i];
    }

    private static void Scale(float* destination, float factor, int length)
    {
        for (var i = 0; i < length; i++)
            destination[i] *= factor;
    }
}
