using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Serving.Execution;

namespace Bulwark.Engine.Tests.Kernels;

/// <summary>
/// Sliding-window attention (a query at p sees p − W + 1 … p) and Gemma 2's soft-capped scores in every kernel
/// that runs them, against a naive twin that scores every earlier position and masks the ones outside the
/// window with −∞, in double precision: contexts below, at and above the window.
/// </summary>
public unsafe class SlidingWindowAttentionTests
{
    private const int Heads = 8, KvHeads = 2, HeadDim = 32, QueryLength = Heads * HeadDim, KvLength = KvHeads * HeadDim;

    private static float[] Random(int n, int seed)
    {
        var random = new Random(seed);
        var x = new float[n];
        for (var i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 2 - 1);
        return x;
    }

    /// <summary>The twin: every position 0 … p scored, those before p − W + 1 masked to −∞ (window 0: none), cap·tanh(s/cap) when capped.</summary>
    internal static double[] Masked(ReadOnlySpan<float> query, float[] keys, float[] values, int position, int window, double scale, double cap = 0)
    {
        var output = new double[QueryLength];
        var group = Heads / KvHeads;
        for (var head = 0; head < Heads; head++)
        {
            var kvOffset = head / group * HeadDim;
            var scores = new double[position + 1];
            for (var p = 0; p <= position; p++)
            {
                double dot = 0;
                for (var d = 0; d < HeadDim; d++) dot += (double)query[head * HeadDim + d] * keys[p * KvLength + kvOffset + d];
                var s = dot * scale;
                if (cap > 0) s = cap * Math.Tanh(s / cap);
                scores[p] = window > 0 && position - p >= window ? double.NegativeInfinity : s;
            }
            var max = scores.Max();
            var sum = scores.Sum(s => Math.Exp(s - max));
            for (var p = 0; p <= position; p++)
            {
                var weight = Math.Exp(scores[p] - max) / sum;
                for (var d = 0; d < HeadDim; d++) output[head * HeadDim + d] += weight * values[p * KvLength + kvOffset + d];
            }
        }
        return output;
    }

    private static void AssertClose(double[] expected, ReadOnlySpan<float> actual, string what)
    {
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4 * Math.Max(1, Math.Abs(expected[i])), $"{what} element {i}: twin {expected[i]}, kernel {actual[i]}");
    }

    /// <summary>A paged copy of a contiguous cache: blocks in shuffled order.</summary>
    private static (float[] Keys, float[] Values, int[] Table) Paged(float[] keys, float[] values, int positions, int blockSize)
    {
        var blocks = (positions + blockSize - 1) / blockSize;
        var table = Enumerable.Range(0, blocks).Select(b => blocks - 1 - b).ToArray();
        var pk = new float[blocks * blockSize * KvLength];
        var pv = new float[pk.Length];
        for (var p = 0; p < positions; p++)
        {
            var slot = (table[p / blockSize] * blockSize + p % blockSize) * KvLength;
            keys.AsSpan(p * KvLength, KvLength).CopyTo(pk.AsSpan(slot));
            values.AsSpan(p * KvLength, KvLength).CopyTo(pv.AsSpan(slot));
        }
        return (pk, pv, table);
    }

    [Theory]
    [InlineData(6, 4)]
    [InlineData(6, 5)]
    [InlineData(8, 8)]
    [InlineData(1, 3)]
    public void PagedDecodeAttendsTheWindowOnly(int window, int blockSize)
    {
        var positions = 3 * window + 2;
        var keys = Random(positions * KvLength, 1);
        var values = Random(positions * KvLength, 2);
        var (pk, pv, table) = Paged(keys, values, positions, blockSize);
        var half = pk.Select(x => (Half)x).ToArray();
        var halfValues = pv.Select(x => (Half)x).ToArray();
        var roundedKeys = keys.Select(x => (float)(Half)x).ToArray();
        var roundedValues = values.Select(x => (float)(Half)x).ToArray();
        for (var position = 0; position < positions; position++) // below, at and above the window
        {
            var query = Random(QueryLength, 100 + position);
            var first = Math.Max(0, position - window + 1);
            var output = new float[QueryLength];
            var halfOutput = new float[QueryLength];
            fixed (float* k = pk, v = pv, q = query, o = output, ho = halfOutput)
            fixed (Half* hk = half, hv = halfValues)
            {
                PagedAttention.Attend(k, v, blockSize, (long)blockSize * KvLength, KvLength, table, q, position + 1, Heads, KvHeads, HeadDim, o, new float[blockSize], first);
                PagedAttention.AttendHalf(hk, hv, blockSize, (long)blockSize * KvLength, KvLength, table, q, position + 1, Heads, KvHeads, HeadDim, ho,
                    new float[PagedAttention.HalfScratchLength(blockSize, HeadDim)], first);
            }
            AssertClose(Masked(query, keys, values, position, window, 1 / Math.Sqrt(HeadDim)), output, $"f32 window {window} position {position}");
            AssertClose(Masked(query, roundedKeys, roundedValues, position, window, 1 / Math.Sqrt(HeadDim)), halfOutput, $"f16 window {window} position {position}");
        }
    }

    // Chunks that start before, inside and after the window; windows below, at and above the 8-position block and the tile.
    [Theory]
    [InlineData(5, 0, 20, 0)]
    [InlineData(5, 3, 9, 4)]
    [InlineData(8, 0, 17, 16)]
    [InlineData(16, 10, 30, 5)]
    [InlineData(3, 40, 1, 8)]   // a decode step late in the context
    [InlineData(20, 0, 12, 0)]  // the whole chunk inside the window
    public void TiledPrefillAttendsTheWindowOnly(int window, int start, int tokens, int blockSize)
    {
        if (!TiledAttention.CanRun(KernelIsa.Detected, HeadDim)) return; // no 512-bit vectors here: prefill attends token by token
        var positions = start + tokens;
        var keys = Random(positions * KvLength, 3);
        var values = Random(positions * KvLength, 4);
        var query = Random(tokens * QueryLength, 5);
        var actual = new float[tokens * QueryLength];
        var (pk, pv, table) = blockSize > 0 ? Paged(keys, values, positions, blockSize) : (keys, values, []);
        fixed (float* q = query, o = actual, k = pk, v = pv)
        fixed (int* t = table)
        {
            var planes = blockSize > 0 ? new TiledAttention.KvPlanes(k, v, t, blockSize, (long)blockSize * KvLength) : new TiledAttention.KvPlanes(k, v);
            for (var item = 0; item < TiledAttention.Items(tokens, Heads, KvHeads); item++)
                TiledAttention.Run(item, q, o, QueryLength, planes, start, tokens, Heads, KvHeads, HeadDim, window);
        }
        for (var i = 0; i < tokens; i++)
            AssertClose(Masked(query.AsSpan(i * QueryLength, QueryLength), keys, values, start + i, window, 1 / Math.Sqrt(HeadDim)),
                actual.AsSpan(i * QueryLength, QueryLength), $"window {window} token {i} at {start + i}");
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(4, 0)]
    [InlineData(4, 5)]
    [InlineData(0, 3)]
    public void SoftCappedScoresMatchTheTwin(int window, int blockSize)
    {
        const float cap = 0.5f, scale = 0.3f; // a cap small enough that tanh bends every score
        var positions = 13;
        var keys = Random(positions * KvLength, 6);
        var values = Random(positions * KvLength, 7);
        var (pk, pv, table) = blockSize > 0 ? Paged(keys, values, positions, blockSize) : (keys, values, []);
        for (var position = 0; position < positions; position++)
        {
            var query = Random(QueryLength, 200 + position);
            var output = new float[QueryLength];
            var first = window > 0 ? Math.Max(0, position - window + 1) : 0;
            fixed (float* q = query, o = output, k = pk, v = pv)
            fixed (int* t = table)
            {
                var planes = blockSize > 0 ? new TiledAttention.KvPlanes(k, v, t, blockSize, (long)blockSize * KvLength) : new TiledAttention.KvPlanes(k, v);
                SoftCappedAttention.Attend(q, planes, first, position, Heads, KvHeads, HeadDim, scale, cap, o, new float[positions]);
            }
            AssertClose(Masked(query, keys, values, position, window, scale, cap), output, $"capped window {window} position {position}");
        }
    }
}
