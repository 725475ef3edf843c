using System.Buffers.Binary;
using System.Text;
using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Tokenizers.Loading;

/// <summary>
/// The few protobuf wire-format reads a SentencePiece model needs (varint, 32-bit, length-
/// delimited); every length is checked against what is left, so a hostile file cannot read
/// past its end. Written by hand because the .proto is four messages and a protobuf runtime
/// would be a dependency for one file format.
/// </summary>
internal ref struct ProtobufReader(ReadOnlySpan<byte> data, string file)
{
    private readonly ReadOnlySpan<byte> _data = data;
    private int _position;

    public readonly bool AtEnd => _position >= _data.Length;

    /// <summary>Reads a field key: field number and wire type (0 varint, 1 64-bit, 2 bytes, 5 32-bit).</summary>
    public (int Field, int WireType) ReadKey()
    {
        var key = ReadVarint();
        var field = key >> 3;
        if (field is 0 or > int.MaxValue) throw Error("key", $"invalid field number {field}");
        return ((int)field, (int)(key & 7));
    }

    public ulong ReadVarint()
    {
        ulong value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (_position >= _data.Length) throw Error("varint", "truncated");
            var b = _data[_position++];
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return value;
        }
        throw Error("varint", "longer than 10 bytes");
    }

    public float ReadFloat() => BinaryPrimitives.ReadSingleLittleEndian(Take(4));

    public ReadOnlySpan<byte> ReadBytes()
    {
        var length = ReadVarint();
        if (length > (ulong)(_data.Length - _position)) throw Error("length", $"{length} bytes declared, {_data.Length - _position} left");
        return Take((int)length);
    }

    public string ReadString() => Encoding.UTF8.GetString(ReadBytes());

    public void Skip(int wireType)
    {
        switch (wireType)
        {
            case 0: ReadVarint(); break;
            case 1: Take(8); break;
            case 2: ReadBytes(); break;
            case 5: Take(4); break;
            default: throw Error("wire type", $"unsupported wire type {wireType}");
        }
    }

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count > _data.Length - _position) throw Error("field", $"needs {count} bytes, {_data.Length - _position} left");
        var span = _data.Slice(_position, count);
        _position += count;
        return span;
    }

    private readonly ModelFormatException Error(string field, string problem) => new(file, $"protobuf {field} at byte {_position}", problem);
}
