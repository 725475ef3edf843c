using Bulwark.Engine.Kernels.Cpu;

namespace Bulwark.Engine.Tests.Kernels;

/// <summary>Prefill attention in tiles of (token, head) rows against the reference, token by token.</summary>
public unsafe class TiledAttentionTests
{
    private static float[] Random(int n, int seed)
    {
        var random = new Random(seed);
        var x = new float[n];
        for (var i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 2 - 1);
        return x;
    }

    // Chunks starting at 0 and later, token counts around the 8-position block and the 16-row tile,
    // groups of 1 (rows are tokens), 3 (a tile ends mid-token), 8 (TinyLlama) and 32 (a token spans two tiles),
    // head sizes 64, 128 and off the vector width.
    [Theory]
    [InlineData(0, 1, 4, 4, 64)]
    [InlineData(0, 7, 32, 4, 64)]
    [InlineData(0, 9, 32, 4, 64)]
    [InlineData(5, 17, 6, 2, 24)]
    [InlineData(30, 3, 12, 12, 128)]
    [InlineData(0, 40, 8, 8, 16)]
    [InlineData(13, 5, 32, 1, 8)]
    [InlineData(64, 24, 9, 3, 5)]
    [InlineData(200, 1, 32, 4, 64)] // a decode step: one token late in the context
    public void EveryTokenMatchesTheReference(int start, int tokens, int heads, int kvHeads, int headDim)
    {
        if (!TiledAttention.CanRun(KernelIsa.Detected, headDim)) return; // no 512-bit vectors here: prefill attends head by head
        var queryLength = heads * headDim;
        var kvLength = kvHeads * headDim;
        var positions = start + tokens;
        var q = Random(tokens * queryLength, 1);
        var k = Random(positions * kvLength, 2);
        var v = Random(positions * kvLength, 3);
        var actual = new float[tokens * queryLength];
        Array.Fill(actual, float.NaN); // written, not accumulated into
        fixed (float* pq = q)
        fixed (float* pk = k)
        fixed (float* pv = v)
        fixed (float* po = actual)
        {
            var items = TiledAttention.Items(tokens, heads, kvHeads);
            for (var item = items - 1; item >= 0; item--) // any order: items are independent
                TiledAttention.Run(item, pq, po, queryLength, pk, pv, start, tokens, heads, kvHeads, headDim);
        }
        for (var t = 0; t < tokens; t++)
        {
            var expected = new float[queryLength];
            var seen = (start + t + 1) * kvLength;
            Bulwark.Engine.Kernels.Reference.Attention.Attend(q.AsSpan(t * queryLength, queryLength), k.AsSpan(0, seen), v.AsSpan(0, seen),
                start + t + 1, heads, kvHeads, headDim, new float[start + t + 1], expected);
            for (var i = 0; i < queryLength; i++)
                Assert.True(MathF.Abs(expected[i] - actual[t * queryLength + i]) <= 1e-4f * MathF.Max(1f, MathF.Abs(expected[i])),
                    $"token {t} element {i}: reference {expected[i]} tiled {actual[t * queryLength + i]}");
        }
    }

    /// <summary>
    /// The same keys and values scattered over a paged cache (blocks in shuffled order, block sizes that
    /// hold 8 positions in a row and sizes that do not) give the contiguous cache's result.
    /// </summary>
    [Theory]
    [InlineData(16, 0, 20)]
    [InlineData(16, 37, 11)]
    [InlineData(5, 3, 30)]
    [InlineData(12, 9, 9)]
    public void APagedCacheGivesTheContiguousResult(int blockSize, int start, int tokens)
    {
        if (!TiledAttention.CanRun(KernelIsa.Detected, 32)) return;
        const int heads = 8, kvHeads = 2, headDim = 32;
        const int queryLength = heads * headDim, kvLength = kvHeads * headDim;
        var positions = start + tokens;
        var q = Random(tokens * queryLength, 4);
        var k = Random(positions * kvLength, 5);
        var v = Random(positions * kvLength, 6);
        var blocks = (positions + blockSize - 1) / blockSize;
        var table = Enumerable.Range(0, blocks).Select(b => (b * 5 + 3) % blocks).ToArray(); // a permutation (5 and blocks coprime below)
        Assert.Equal(blocks, table.Distinct().Count());
        var blockStride = (long)blockSize * kvLength;
        var pagedK = new float[blocks * blockStride];
        var pagedV = new float[blocks * blockStride];
        for (var p = 0; p < positions; p++)
        {
            Array.Copy(k, p * kvLength, pagedK, table[p / blockSize] * blockStride + p % blockSize * kvLength, kvLength);
            Array.Copy(v, p * kvLength, pagedV, table[p / blockSize] * blockStride + p % blockSize * kvLength, kvLength);
        }
        var contiguous = new float[tokens * queryLength];
        var paged = new float[tokens * queryLength];
        fixed (float* pq = q)
        fixed (float* pk = k)
        fixed (float* pv = v)
        fixed (float* ppk = pagedK)
        fixed (float* ppv = pagedV)
        fixed (int* pt = table)
        fixed (float* pc = contiguous)
        fixed (float* pp = paged)
        {
            var planes = new TiledAttention.KvPlanes(ppk, ppv, pt, blockSize, blockStride);
            for (var item = 0; item < TiledAttention.Items(tokens, heads, kvHeads); item++)
            {
                TiledAttention.Run(item, pq, pc, queryLength, pk, pv, start, tokens, heads, kvHeads, headDim);
                TiledAttention.Run(item, pq, pp, queryLength, planes, start, tokens, heads, kvHeads, headDim);
            }
        }
        for (var i = 0; i < contiguous.Length; i++)
            Assert.True(MathF.Abs(contiguous[i] - paged[i]) <= 1e-5f * MathF.Max(1f, MathF.Abs(contiguous[i])), $"element {i}: contiguous {contiguous[i]} paged {paged[i]}");
    }

    [Fact]
    public void OneTokenTakesATileOnlyWhenItsGroupFillsHalfTheLanes()
    {
        Assert.True(TiledAttention.FillsForOneToken(32, 4)); // TinyLlama: 8 of 16 lanes
        Assert.True(TiledAttention.FillsForOneToken(32, 1));
        Assert.False(TiledAttention.FillsForOneToken(28, 4)); // 7 of 16
        Assert.False(TiledAttention.FillsForOneToken(12, 12)); // no grouping: 1 of 16
        Assert.False(TiledAttention.FillsForOneToken(8, 0));
    }

    [Fact]
    public void ItemsCoverEveryRowOnce()
    {
        Assert.Equal(4 * 32, TiledAttention.Items(64, 32, 4)); // 64 tokens × 8 heads = 512 rows per KV head
        Assert.Equal(12 * 1, TiledAttention.Items(5, 12, 12)); // one head per KV head: 5 rows, one tile
        Assert.Equal(2 * 2, TiledAttention.Items(3, 12, 2)); // 18 rows: two tiles
    }

    [Theory]
    [InlineData(0, 4)]
    [InlineData(TiledAttention.MaxHeadDim + 1, 4)]
    [InlineData(64, 3)]
    public void AnInvalidShapeIsRefused(int headDim, int kvHeads)
    {
        var buffer = new float[16];
        fixed (float* p = buffer)
        {
            var pointer = p;
            Assert.Throws<ArgumentException>(() => TiledAttention.Run(0, pointer, pointer, 8, pointer, pointer, 0, 1, 8, kvHeads, headDim));
        }
        Assert.False(TiledAttention.CanRun(InstructionSet.Avx512, 0));
        Assert.False(TiledAttention.CanRun(InstructionSet.Avx512, TiledAttention.MaxHeadDim + 1));
        Assert.False(TiledAttention.CanRun(InstructionSet.AvxVnni, 64));
    }
}
