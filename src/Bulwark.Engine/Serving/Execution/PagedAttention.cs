using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.KvCache;

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
    /// <param name="first">The first position attended (a sliding window's start); blocks before it are never read.</param>
    public static void Attend(float* keys, float* values, int blockSize, long blockStride, int kvLength, ReadOnlySpan<int> blockTable,
        float* query, int context, int headCount, int kvHeadCount, int headDim, float* output, Span<float> scores, int first = 0)
    {
        var group = headCount / kvHeadCount;
        var scale = 1f / MathF.Sqrt(headDim);
        var blocks = (context + blockSize - 1) / blockSize;
        var isa = KernelIsa.Active;
        if (scores.Length < Math.Min(blockSize, context) || blockTable.Length < blocks || (uint)first >= (uint)context)
            throw new ArgumentException($"attention over positions [{first}, {context}) needs {blocks} blocks and {blockSize} floats of scratch");
        fixed (float* s = scores)
        {
            for (var head = 0; head < headCount; head++)
            {
                var q = query + head * headDim;
                var o = output + head * headDim;
                var kvOffset = head / group * headDim;
                var max = float.NegativeInfinity;
                var sum = 0f;
                for (var b = first / blockSize; b < blocks; b++)
                {
                    var skip = b == first / blockSize ? first % blockSize : 0;
                    var n = Math.Min(blockSize, context - b * blockSize) - skip;
                    var blockStart = blockTable[b] * blockStride + kvOffset + (long)skip * kvLength;
                    AttentionKernels.OnlineBlock(q, keys + blockStart, values + blockStart, kvLength, n, headDim, scale, s, ref max, ref sum, o, isa);
                }
                VectorOps.Scale(new Span<float>(o, headDim), 1f / sum);
            }
        }
    }
    /// <summary>Scratch floats <see cref="AttendHalf"/> needs: a block's scores, keys and values.</summary>
    public static int HalfScratchLength(int blockSize, int headDim) => checked(blockSize * (1 + 2 * headDim));

    /// <summary>
    /// As <see cref="Attend(float*, float*, int, long, int, ReadOnlySpan{int}, float*, int, int, int, int, float*, Span{float})"/>
    /// over an F16 cache. KV head by KV head, each block's keys and values are converted to f32 once and
    /// then serve every query head of the group (8 in TinyLlama), each with its own online softmax.
    /// </summary>
    /// <param name="scratch">At least <see cref="HalfScratchLength"/> floats.</param>
    public static void AttendHalf(Half* keys, Half* values, int blockSize, long blockStride, int kvLength, ReadOnlySpan<int> blockTable,
        float* query, int context, int headCount, int kvHeadCount, int headDim, float* output, Span<float> scratch, int first = 0)
    {
        var group = headCount / kvHeadCount;
        var scale = 1f / MathF.Sqrt(headDim);
        var blocks = (context + blockSize - 1) / blockSize;
        var isa = KernelIsa.Active;
        if (scratch.Length < HalfScratchLength(blockSize, headDim) || blockTable.Length < blocks || group > 1024 || (uint)first >= (uint)context)
            throw new ArgumentException($"attention over {context} positions needs {blocks} blocks and {HalfScratchLength(blockSize, headDim)} floats of scratch");
        Span<float> maxes = stackalloc float[group];
        Span<float> sums = stackalloc float[group];
        fixed (float* s = scratch)
        {
            var k = s + blockSize;
            var v = k + blockSize * headDim;
            for (var kvHead = 0; kvHead < kvHeadCount; kvHead++)
            {
                maxes.Fill(float.NegativeInfinity);
                sums.Clear();
                var kvOffset = kvHead * headDim;
                for (var b = first / blockSize; b < blocks; b++)
                {
                    var skip = b == first / blockSize ? first % blockSize : 0;
                    var n = Math.Min(blockSize, context - b * blockSize) - skip;
                    var blockStart = blockTable[b] * blockStride + kvOffset + (long)skip * kvLength;
                    for (var t = 0; t < n; t++)
                    {
                        KvHalf.ToSingle((ushort*)(keys + blockStart + t * kvLength), k + t * headDim, headDim);
                        KvHalf.ToSingle((ushort*)(values + blockStart + t * kvLength), v + t * headDim, headDim);
                    }
                    for (var g = 0; g < group; g++)
                    {
                        var head = kvHead * group + g;
                        AttentionKernels.OnlineBlock(query + head * headDim, k, v, headDim, n, headDim, scale, s, ref maxes[g], ref sums[g], output + head * headDim, isa);
                    }
                }
                for (var g = 0; g < group; g++)
                    VectorOps.Scale(new Span<float>(output + (kvHead * group + g) * headDim, headDim), 1f / sums[g]);
            }
        }
    }
}
