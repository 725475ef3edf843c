using System.Runtime.InteropServices;

namespace Bulwark.Engine.Memory;

/// <summary>
/// A zeroed float32 array in 64-byte-aligned native memory, outside the GC heap: activations, KV cache,
/// and small weights converted at load time. Large ones are mapped pages (<see cref="AnonymousPages"/>):
/// resident only where written, returned to the system on dispose.
/// </summary>
public sealed unsafe class NativeBuffer : IDisposable
{
    private float* _data;

    public NativeBuffer(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        var bytes = checked((nuint)Math.Max(1, length) * sizeof(float));
        _data = (float*)AnonymousPages.Allocate((long)bytes);
    }

    public long Length { get; }

    public float* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_data == null, this);
            return _data;
        }
    }

    public Span<float> Span => new(Pointer, checked((int)Length));

    public Span<float> Slice(long start, int length)
    {
        if (start < 0 || length < 0 || start + length > Length) throw new ArgumentOutOfRangeException(nameof(start));
        return new Span<float>(Pointer + start, length);
    }

    public void Dispose()
    {
        if (_data == null) return;
        AnonymousPages.Free(_data, Math.Max(1, Length) * sizeof(float));
        _data = null;
    }
}
