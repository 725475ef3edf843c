using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.KvCache;
using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Serving.Execution;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>Paged attention with online softmax against its slow twin, <see cref="DecoderSteps.Attend"/> over a contiguous cache.</summary>
public unsafe class PagedAttentionTests
{
    [Theory]
    [InlineData(1, 1, 8, 8, 8)]
    [InlineData(3, 7, 4, 2, 16)]   // context not a multiple of the block size
    [InlineData(4, 16, 4, 1, 6)]   // context exactly at a block boundary, MQA, head dim below a vector
    [InlineData(4, 17, 6, 3, 32)]  // one slot into a new block
    [InlineData(16, 15, 8, 2, 64)] // one slot short of a block
    [InlineData(16, 200, 8, 8, 64)]
    public void PagedAttentionEqualsContiguousAttention(int blockSize, int context, int heads, int kvHeads, int headDim)
    {
        var random = new Random(context * 31 + blockSize);
        var config = Config(heads, kvHeads, headDim);
        var kvLength = kvHeads * headDim;
        var keys = RandomFloats(random, context * kvLength, 2f);
        var values = RandomFloats(random, context * kvLength, 1f);
        var query = RandomFloats(random, heads * headDim, 2f);

        // Blocks in shuffled order with spare blocks between them; layer 1 is the one read.
        var blocksNeeded = (context + blockSize - 1) / blockSize;
        var table = Enumerable.Range(0, blocksNeeded * 2).OrderBy(_ => random.Next()).Take(blocksNeeded).ToArray();
        using var store = new KvBlockStore(2, blocksNeeded * 2, blockSize, kvLength);
        store.Fill(float.NaN);
        for (var p = 0; p < context; p++)
        {
            var slot = store.SlotOffset(table, p);
            keys.AsSpan(p * kvLength, kvLength).CopyTo(new Span<float>(store.Keys(1) + slot, kvLength));
            values.AsSpan(p * kvLength, kvLength).CopyTo(new Span<float>(store.Values(1) + slot, kvLength));
        }

        var expected = new float[heads * headDim];
        DecoderSteps.Attend(query, keys, values, context, config, new float[context], expected);
        var actual = new float[heads * headDim];
        fixed (float* q = query, o = actual)
            PagedAttention.Attend(store, 1, table, q, context, heads, kvHeads, headDim, o, new float[blockSize]);

        for (var i = 0; i < expected.Length; i++)
            Assert.True(MathF.Abs(expected[i] - actual[i]) <= 1e-5f * Math.Max(1f, MathF.Abs(expected[i])), $"element {i}: {actual[i]} vs {expected[i]}");
    }

    [Theory]
    [InlineData(1, 1, 8, 8, 8)]
    [InlineData(3, 7, 4, 2, 16)]
    [InlineData(4, 16, 4, 1, 6)]
    [InlineData(4, 17, 6, 3, 32)]
    [InlineData(16, 15, 8, 2, 64)]
    [InlineData(16, 200, 32, 4, 64)] // TinyLlama's heads: groups of 8 query heads per KV head
    public void HalfPagedAttentionEqualsContiguousAttentionOverTheRoundedValues(int blockSize, int context, int heads, int kvHeads, int headDim)
    {
        var random = new Random(context * 37 + blockSize);
        var config = Config(heads, kvHeads, headDim);
        var kvLength = kvHeads * headDim;
        // The values an F16 cache holds: the reference attends over exactly these.
        var keys = RandomFloats(random, context * kvLength, 2f).Select(x => (float)(Half)x).ToArray();
        var values = RandomFloats(random, context * kvLength, 1f).Select(x => (float)(Half)x).ToArray();
        var query = RandomFloats(random, heads * headDim, 2f);

        var blocksNeeded = (context + blockSize - 1) / blockSize;
        var table = Enumerable.Range(0, blocksNeeded * 2).OrderBy(_ => random.Next()).Take(blocksNeeded).ToArray();
        using var store = new KvBlockStore(2, blocksNeeded * 2, blockSize, kvLength, KvCacheType.F16);
        store.Fill(float.NaN);
        for (var p = 0; p < context; p++)
        {
            var slot = store.SlotOffset(table, p);
            for (var i = 0; i < kvLength; i++)
            {
                store.HalfKeys(1)[slot + i] = (Half)keys[p * kvLength + i];
                store.HalfValues(1)[slot + i] = (Half)values[p * kvLength + i];
            }
        }

        var expected = new float[heads * headDim];
        DecoderSteps.Attend(query, keys, values, context, config, new float[context], expected);
        var actual = new float[heads * headDim];
        fixed (float* q = query, o = actual)
            PagedAttention.AttendHalf(store.HalfKeys(1), store.HalfValues(1), blockSize, store.BlockStride, kvLength, table, q, context,
                heads, kvHeads, headDim, o, new float[PagedAttention.HalfScratchLength(blockSize, headDim)]);

        for (var i = 0; i < expected.Length; i++)
            Assert.True(MathF.Abs(expected[i] - actual[i]) <= 1e-5f * Math.Max(1f, MathF.Abs(expected[i])), $"element {i}: {actual[i]} vs {expected[i]}");
        Assert.Throws<ArgumentException>(() =>
        {
            fixed (float* q = query, o = actual)
                PagedAttention.AttendHalf(store.HalfKeys(1), store.HalfValues(1), blockSize, store.BlockStride, kvLength, table, q, context,
                    heads, kvHeads, headDim, o, new float[PagedAttention.HalfScratchLength(blockSize, headDim) - 1]);
        });
    }

    [Fact]
    public void AHalfStoreTakesHalfTheBytesAndCopiesItsBlocks()
    {
        Assert.Equal(KvBlockStore.BytesPerBlock(3, 4, 2) / 2, KvBlockStore.BytesPerBlock(3, 4, 2, KvCacheType.F16));
        using var store = new KvBlockStore(3, 4, 4, 2, KvCacheType.F16);
        store.Fill(0f);
        for (var l = 0; l < 3; l++)
            for (var i = 0; i < 4 * 2; i++)
            {
                store.HalfKeys(l)[1 * store.BlockStride + i] = (Half)(100 * l + i);
                store.HalfValues(l)[1 * store.BlockStride + i] = (Half)(-(100 * l + i));
            }
        store.Copy(new BlockCopy(1, 3, 3));
        for (var l = 0; l < 3; l++)
            for (var i = 0; i < 4 * 2; i++)
            {
                var copied = i < 3 * 2;
                Assert.Equal(copied ? 100 * l + i : 0f, (float)store.HalfKeys(l)[3 * store.BlockStride + i]);
                Assert.Equal(copied ? -(100 * l + i) : 0f, (float)store.HalfValues(l)[3 * store.BlockStride + i]);
            }
        Assert.Throws<InvalidOperationException>(() => store.Keys(0)); // an F16 store has no f32 planes
        Assert.Throws<ArgumentOutOfRangeException>(() => store.HalfKeys(3));
    }

    [Fact]
    public void BlockCopiesCopyTheGivenSlotsOfEveryLayerAndNothingElse()
    {
        using var store = new KvBlockStore(3, 4, 4, 2);
        store.Fill(0f);
        for (var l = 0; l < 3; l++)
            for (var i = 0; i < 4 * 2; i++)
            {
                store.Keys(l)[1 * store.BlockStride + i] = 100 * l + i;
                store.Values(l)[1 * store.BlockStride + i] = -(100 * l + i);
            }
        store.Copy(new BlockCopy(1, 3, 3));
        for (var l = 0; l < 3; l++)
            for (var i = 0; i < 4 * 2; i++)
            {
                var copied = i < 3 * 2;
                Assert.Equal(copied ? 100 * l + i : 0f, store.Keys(l)[3 * store.BlockStride + i]);
                Assert.Equal(copied ? -(100 * l + i) : 0f, store.Values(l)[3 * store.BlockStride + i]);
            }
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Copy(new BlockCopy(1, 4, 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Copy(new BlockCopy(1, 2, 5)));
        store.Copy(new BlockCopy(1, 2, 4)); // a whole block is the limit
    }

    private static LlamaConfig Config(int heads, int kvHeads, int headDim) => new()
    {
        Architecture = ModelArchitecture.Llama, EmbeddingLength = heads * headDim, LayerCount = 2, HeadCount = heads,
        KeyValueHeadCount = kvHeads, HeadDim = headDim, FeedForwardLength = 8, VocabularySize = 8, ContextLength = 4096,
        RopeLayout = RopeLayout.AdjacentPairs,
    };

    private static float[] RandomFloats(Random random, int count, float scale) =>
        Enumerable.Range(0, count).Select(_ => scale * (2f * random.NextSingle() - 1f)).ToArray();
}
