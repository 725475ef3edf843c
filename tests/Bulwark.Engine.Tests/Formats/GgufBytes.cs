using System.Buffers.Binary;
using System.Text;

namespace Bulwark.Engine.Tests.Formats;

/// <summary>
/// Writes GGUF bytes field by field, with no checks at all, so the hostile corpus can put any
/// value anywhere (counts near 2^64, bad types, misaligned offsets). Independent of GgufWriter.
/// </summary>
internal sealed class GgufBytes
{
    public const uint TypeString = 8, TypeArray = 9, TypeUInt32 = 4, TypeUInt64 = 10, TypeInt32 = 5, TypeFloat32 = 6, TypeBool = 7, TypeUInt8 = 0;

    private readonly MemoryStream _stream = new();

    public long Length => _stream.Length;

    public GgufBytes Raw(ReadOnlySpan<byte> bytes)
    {
        _stream.Write(bytes);
        return this;
    }

    public GgufBytes U32(uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        return Raw(b);
    }

    public GgufBytes U64(ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        return Raw(b);
    }

    public GgufBytes F32(float value) => U32(BitConverter.SingleToUInt32Bits(value));

    /// <summary>A GGUF string: u64 length then the bytes as given (which may be invalid UTF-8).</summary>
    public GgufBytes Str(byte[] bytes) => U64((ulong)bytes.Length).Raw(bytes);

    public GgufBytes Str(string text) => Str(Encoding.UTF8.GetBytes(text));

    public GgufBytes Header(ulong tensors, ulong kvs, uint version = 3) => Raw("GGUF"u8).U32(version).U64(tensors).U64(kvs);

    public GgufBytes KvString(string key, string value) => Str(key).U32(TypeString).Str(value);

    public GgufBytes KvU32(string key, uint value) => Str(key).U32(TypeUInt32).U32(value);

    public GgufBytes KvF32(string key, float value) => Str(key).U32(TypeFloat32).F32(value);

    public GgufBytes TensorInfo(string name, ulong[] dims, uint type, ulong offset)
    {
        Str(name).U32((uint)dims.Length);
        foreach (var d in dims) U64(d);
        return U32(type).U64(offset);
    }

    public GgufBytes AlignTo(int alignment)
    {
        while (_stream.Length % alignment != 0) _stream.WriteByte(0);
        return this;
    }

    public GgufBytes Zeros(int count) => Raw(new byte[count]);

    public byte[] ToArray() => _stream.ToArray();
}
