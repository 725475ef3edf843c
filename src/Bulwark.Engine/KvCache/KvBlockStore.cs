using Bulwark.Engine.Memory;

namespace Bulwark.Engine.KvCache;

/// <summary>
/// The KV blocks of every layer in native memory, laid out per layer as [block][slot][kv_dim]
/// for keys and, separately, for values: a block's slots are contiguous, so attention over one
/// block reads one run of memory per layer.
/// </summary>
/// <remarks>
/// Attention never reads a slot its sequence did not write: a step writes K/V of every position it
/// computes (or copies them with a <see cref="BlockCopy"/>) before any query of that step or a later
/// one reads it, and a query reads only positions below its own. Tests poison the whole store with
/// NaN to prove it. Beyond that, a block's previous contents are cleared (<see cref="Clear"/>) before
/// it changes hands and soon after it is freed, so a read of the process's memory finds no ended
/// request's keys and values (the engine's scrubbing, see <c>BlockAllocator</c>).
/// </remarks>
internal sealed unsafe class KvBlockStore : IDisposable
{
    private readonly byte* _keys;
    private readonly byte* _values;
    private readonly long _bytes;
    private readonly long _layerStride;
    private bool _disposed;

    public KvBlockStore(int layers, int blockCount, int blockSize, int kvLength, KvCacheType type = KvCacheType.F32)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        if (!Enum.IsDefined(type)) throw new ArgumentOutOfRangeException(nameof(type), type, "KV cache type must be F32 or F16");
        Layers = layers;
        BlockCount = blockCount;
        BlockSize = blockSize;
        KvLength = kvLength;
        Type = type;
        BlockStride = (long)blockSize * kvLength;
        _layerStride = checked(blockCount * BlockStride);
        _bytes = checked(layers * _layerStride * ElementBytes(type));
        _keys = (byte*)AnonymousPages.Allocate(_bytes);
        try
        {
            _values = (byte*)AnonymousPages.Allocate(_bytes);
        }
        catch
        {
            AnonymousPages.Free(_keys, _bytes);
            throw;
        }
    }

    public int Layers { get; }
    public int BlockCount { get; }
    public int BlockSize { get; }
    public int KvLength { get; }

    /// <summary>How each K/V value is stored: f32, or f16 (half the memory; attention converts a block at a time).</summary>
    public KvCacheType Type { get; }

    /// <summary>Values (not bytes) between the starts of two consecutive blocks of one layer.</summary>
    public long BlockStride { get; }

    public static int ElementBytes(KvCacheType type) => type == KvCacheType.F16 ? 2 : sizeof(float);

    /// <summary>Bytes one block takes over all layers, keys and values.</summary>
    public static long BytesPerBlock(int layers, int blockSize, int kvLength, KvCacheType type = KvCacheType.F32) =>
        2L * layers * blockSize * kvLength * ElementBytes(type);

    /// <summary>Block 0 of the layer's keys (F32 stores); block b starts <see cref="BlockStride"/>·b values later.</summary>
    public float* Keys(int layer) => (float*)Plane(_keys, layer, KvCacheType.F32);

    public float* Values(int layer) => (float*)Plane(_values, layer, KvCacheType.F32);

    /// <summary>As <see cref="Keys"/> for an F16 store.</summary>
    public Half* HalfKeys(int layer) => (Half*)Plane(_keys, layer, KvCacheType.F16);

    public Half* HalfValues(int layer) => (Half*)Plane(_values, layer, KvCacheType.F16);

    private byte* Plane(byte* start, int layer, KvCacheType expected)
    {
        if (Type != expected) throw new InvalidOperationException($"this KV store holds {Type} values, not {expected}");
        if ((uint)layer >= (uint)Layers) throw new ArgumentOutOfRangeException(nameof(layer), layer, $"layer must be below {Layers}");
        return start + layer * _layerStride * ElementBytes(Type);
    }

    /// <summary>Where the K (or V) of a position goes, in values from the layer's start, given the sequence's block table.</summary>
    public long SlotOffset(ReadOnlySpan<int> blockTable, int position) =>
        blockTable[position / BlockSize] * BlockStride + (long)(position % BlockSize) * KvLength;

    /// <summary>Copy-on-write: the first <see cref="BlockCopy.Slots"/> slots of a block, in every layer.</summary>
    public void Copy(BlockCopy copy)
    {
        if ((uint)copy.Source >= (uint)BlockCount || (uint)copy.Destination >= (uint)BlockCount || copy.Slots < 0 || copy.Slots > BlockSize)
            throw new ArgumentOutOfRangeException(nameof(copy), copy, $"block ids must be below {BlockCount} and slots at most {BlockSize}");
        var element = ElementBytes(Type);
        var bytes = (long)copy.Slots * KvLength * element;
        for (var l = 0; l < Layers; l++)
        {
            var layer = l * _layerStride * element;
            var from = layer + copy.Source * BlockStride * element;
            var to = layer + copy.Destination * BlockStride * element;
            Buffer.MemoryCopy(_keys + from, _keys + to, bytes, bytes);
            Buffer.MemoryCopy(_values + from, _values + to, bytes, bytes);
        }
    }

    /// <summary>Sets every slot of <paramref name="block"/>, in every layer, keys and values, to <paramref name="value"/> (0: scrubbed).</summary>
    public void Clear(int block, float value = 0f)
    {
        if ((uint)block >= (uint)BlockCount) throw new ArgumentOutOfRangeException(nameof(block), block, $"block must be below {BlockCount}");
        var element = ElementBytes(Type);
        var count = checked((int)BlockStride);
        for (var l = 0; l < Layers; l++)
        {
            var offset = (l * _layerStride + block * BlockStride) * element;
            if (value == 0f && !float.IsNegative(value))
            {
                System.Runtime.InteropServices.NativeMemory.Clear(_keys + offset, (nuint)(count * element));
                System.Runtime.InteropServices.NativeMemory.Clear(_values + offset, (nuint)(count * element));
            }
            else if (Type == KvCacheType.F16)
            {
                new Span<Half>(_keys + offset, count).Fill((Half)value);
                new Span<Half>(_values + offset, count).Fill((Half)value);
            }
            else
            {
                new Span<float>(_keys + offset, count).Fill(value);
                new Span<float>(_values + offset, count).Fill(value);
            }
        }
    }

    /// <summary>Whether every slot of <paramref name="block"/> is zero (tests: a scrubbed block holds nothing).</summary>
    public bool IsZero(int block)
    {
        var element = ElementBytes(Type);
        var bytes = checked((int)(BlockStride * element));
        for (var l = 0; l < Layers; l++)
        {
            var offset = (l * _layerStride + block * BlockStride) * element;
            if (new ReadOnlySpan<byte>(_keys + offset, bytes).ContainsAnyExcept((byte)0)) return false;
            if (new ReadOnlySpan<byte>(_values + offset, bytes).ContainsAnyExcept((byte)0)) return false;
        }
        return true;
    }

    /// <summary>Fills every slot with <paramref name="value"/> (tests: NaN shows any read of a slot nobody wrote).</summary>
    public void Fill(float value)
    {
        var count = Layers * _layerStride;
        if (Type == KvCacheType.F16)
        {
            new Span<Half>(_keys, checked((int)count)).Fill((Half)value);
            new Span<Half>(_values, checked((int)count)).Fill((Half)value);
            return;
        }
        new Span<float>(_keys, checked((int)count)).Fill(value);
        new Span<float>(_values, checked((int)count)).Fill(value);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        AnonymousPages.Free(_keys, _bytes);
        AnonymousPages.Free(_values, _bytes);
    }
}
