using Bulwark.Engine.Memory;

namespace Bulwark.Engine.KvCache;

/// <summary>
/// One sequence's keys and values, contiguous per layer: [layer][position][kv_heads × head_dim]
/// in native memory. The simple cache of a single-sequence forward pass; the server uses a paged one.
/// </summary>
public sealed class ContiguousKvCache : IDisposable
{
    private readonly NativeBuffer _keys;
    private readonly NativeBuffer _values;
    private readonly int _kvLength;

    public ContiguousKvCache(int layers, int capacity, int kvLength)
    {
        Layers = layers;
        Capacity = capacity;
        _kvLength = kvLength;
        var size = checked((long)layers * capacity * kvLength);
        _keys = new NativeBuffer(size);
        _values = new NativeBuffer(size);
    }

    public int Layers { get; }

    /// <summary>Positions this cache can hold.</summary>
    public int Capacity { get; }

    public Span<float> Key(int layer, int position) => _keys.Slice(Offset(layer, position), _kvLength);
    public Span<float> Value(int layer, int position) => _values.Slice(Offset(layer, position), _kvLength);

    /// <summary>Keys of positions [0, count) of one layer, back to back.</summary>
    public ReadOnlySpan<float> Keys(int layer, int count) => _keys.Slice(Offset(layer, 0), count * _kvLength);
    public ReadOnlySpan<float> Values(int layer, int count) => _values.Slice(Offset(layer, 0), count * _kvLength);

    /// <summary>Keys of positions [start, start + count) of one layer, back to back, writable.</summary>
    public Span<float> KeyRange(int layer, int start, int count) => _keys.Slice(Offset(layer, start), count * _kvLength);
    public Span<float> ValueRange(int layer, int start, int count) => _values.Slice(Offset(layer, start), count * _kvLength);

    private long Offset(int layer, int position) => ((long)layer * Capacity + position) * _kvLength;

    public void Dispose()
    {
        _keys.Dispose();
        _values.Dispose();
    }
}
