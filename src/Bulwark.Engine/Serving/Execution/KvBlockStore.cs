using Bulwark.Engine.Model;
using Bulwark.Engine.Serving.KvCache;

namespace Bulwark.Engine.Serving.Execution;

/// <summary>
/// The KV blocks of every layer in native memory, laid out per layer as [block][slot][kv_dim]
/// for keys and, separately, for values: a block's slots are contiguous, so attention over one
/// block reads one run of memory per layer.
/// </summary>
/// <remarks>
/// Blocks are reused across sequences and tenants without being cleared. That is safe because
/// a step writes K/V of every position it computes (or copies them with a <see cref="BlockCopy"/>)
/// before any query of that step or a later one reads it, and a query reads only positions below
/// its own, which its sequence computed. Tests poison the whole store with NaN to prove it.
/// </remarks>
internal sealed unsafe class KvBlockStore : IDisposable
{
    private readonly NativeBuffer _keys;
    private readonly NativeBuffer _values;
    private readonly long _layerStride;

    public KvBlockStore(int layers, int blockCount, int blockSize, int kvLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        Layers = layers;
        BlockCount = blockCount;
        BlockSize = blockSize;
        KvLength = kvLength;
        BlockStride = (long)blockSize * kvLength;
        _layerStride = checked(blockCount * BlockStride);
        var size = checked(layers * _layerStride);
        _keys = new NativeBuffer(size);
        _values = new NativeBuffer(size);
    }

    public int Layers { get; }
    public int BlockCount { get; }
    public int BlockSize { get; }
    public int KvLength { get; }

    /// <summary>Floats between the starts of two consecutive blocks of one layer.</summary>
    public long BlockStride { get; }

    /// <summary>Bytes one block takes over all layers, keys and values.</summary>
    public static long BytesPerBlock(int layers, int blockSize, int kvLength) => 2L * layers * blockSize * kvLength * sizeof(float);

    /// <summary>Block 0 of the layer's keys; block b starts <see cref="BlockStride"/>·b floats later.</summary>
    public float* Keys(int layer) => _keys.Pointer + layer * _layerStride;

    public float* Values(int layer) => _values.Pointer + layer * _layerStride;

    /// <summary>Where the K (or V) of a position goes, given the sequence's block table.</summary>
    public long SlotOffset(ReadOnlySpan<int> blockTable, int position) =>
        blockTable[position / BlockSize] * BlockStride + (long)(position % BlockSize) * KvLength;

    /// <summary>Copy-on-write: the first <see cref="BlockCopy.Slots"/> slots of a block, in every layer.</summary>
    public void Copy(BlockCopy copy)
    {
        if ((uint)copy.Source >= (uint)BlockCount || (uint)copy.Destination >= (uint)BlockCount || copy.Slots < 0 || copy.Slots > BlockSize)
            throw new ArgumentOutOfRangeException(nameof(copy), copy, $"block ids must be below {BlockCount} and slots at most {BlockSize}");
        var bytes = (long)copy.Slots * KvLength * sizeof(float);
        for (var l = 0; l < Layers; l++)
        {
            Buffer.MemoryCopy(Keys(l) + copy.Source * BlockStride, Keys(l) + copy.Destination * BlockStride, bytes, bytes);
            Buffer.MemoryCopy(Values(l) + copy.Source * BlockStride, Values(l) + copy.Destination * BlockStride, bytes, bytes);
        }
    }

    /// <summary>Fills every slot with <paramref name="value"/> (tests: NaN shows any read of a slot nobody wrote).</summary>
    public void Fill(float value)
    {
        float* k = _keys.Pointer, v = _values.Pointer;
        for (long i = 0; i < _keys.Length; i++)
        {
            k[i] = value;
            v[i] = value;
        }
    }

    public void Dispose()
    {
        _keys.Dispose();
        _values.Dispose();
    }
}
