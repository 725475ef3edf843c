using System.Buffers.Binary;
using System.Text;

namespace Bulwark.Engine.Formats.Gguf;

/// <summary>
/// A bounds-checked little-endian reader over the mapped header. Every read first checks that
/// the bytes are really there, so no claimed count or length is trusted before it is backed.
/// </summary>
internal unsafe struct GgufCursor
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly byte* _start;
    private readonly long _length;
    private readonly string _file;

    public GgufCursor(byte* start, long length, string file)
    {
        _start = start;
        _length = length;
        _file = file;
        Position = 0;
    }

    public long Position { get; private set; }

    public readonly long Remaining => _length - Position;

    public readonly string File => _file;

    public ModelFormatException Error(string field, string problem) => new(_file, field, problem);

    private ReadOnlySpan<byte> Take(int count, string field)
    {
        if (count > Remaining)
            throw Error(field, $"needs {count} bytes at offset {Position} but the file ends at {_length} (truncated)");
        var span = new ReadOnlySpan<byte>(_start + Position, count);
        Position += count;
        return span;
    }

    public byte ReadByte(string field) => Take(1, field)[0];
    public ushort ReadUInt16(string field) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, field));
    public uint ReadUInt32(string field) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, field));
    public ulong ReadUInt64(string field) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, field));
    public float ReadSingle(string field) => BinaryPrimitives.ReadSingleLittleEndian(Take(4, field));
    public double ReadDouble(string field) => BinaryPrimitives.ReadDoubleLittleEndian(Take(8, field));

    public bool ReadBool(string field)
    {
        var b = ReadByte(field);
        if (b > 1) throw Error(field, $"bool must be 0 or 1; got {b}");
        return b == 1;
    }

    /// <summary>A u64 byte length then that many bytes of strict UTF-8.</summary>
    public string ReadString(string field)
    {
        var length = ReadUInt64(field);
        if (length > (ulong)Remaining)
            throw Error(field, $"string length {length} exceeds the {Remaining} bytes left in the file");
        if (length > int.MaxValue)
            throw Error(field, $"string length {length} exceeds the limit {int.MaxValue}");
        var bytes = Take((int)length, field);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new ModelFormatException(_file, field, $"string is not valid UTF-8 (at offset {Position - (long)length})", e);
        }
    }

    /// <summary>
    /// Reads a claimed element count and checks that the file could hold that many elements of at
    /// least <paramref name="minimumElementSize"/> bytes each, before anything is allocated for them.
    /// </summary>
    public int ReadCount(string field, int minimumElementSize)
    {
        var count = ReadUInt64(field);
        var affordable = minimumElementSize == 0 ? (ulong)int.MaxValue : (ulong)Remaining / (ulong)minimumElementSize;
        if (count > affordable)
            throw Error(field, $"count {count} needs at least {minimumElementSize} bytes each but only {Remaining} bytes are left");
        if (count > (ulong)Array.MaxLength)
            throw Error(field, $"count {count} exceeds the limit {Array.MaxLength}");
        return (int)count;
    }

    public void Seek(long position) => Position = position;
}
