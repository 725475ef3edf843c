using System.Text;

namespace Bulwark.Engine.Formats.Gguf;

/// <summary>
/// Builds a GGUF v3 file. Output is a pure function of what was added and in which order:
/// the same calls give the same bytes (no timestamps, no dictionary ordering).
/// </summary>
public sealed class GgufWriter
{
    private readonly List<KeyValuePair<string, GgufValue>> _metadata = [];
    private readonly List<(string Name, GgmlType Type, long[] Dims, long Size, byte[]? Data, Action<Stream>? Write)> _tensors = [];

    public uint Alignment { get; private set; } = GgufFile.DefaultAlignment;

    public GgufWriter Add(string key, GgufValue value)
    {
        if (_metadata.Any(kv => kv.Key == key)) throw new ArgumentException($"metadata key {key} was already added", nameof(key));
        if (key == "general.alignment")
        {
            if (value.Raw is not uint a || a == 0 || (a & (a - 1)) != 0)
                throw new ArgumentException($"general.alignment must be a u32 power of two; got {value}", nameof(value));
            Alignment = a;
        }
        _metadata.Add(new(key, value));
        return this;
    }

    public GgufWriter Add(string key, string value) => Add(key, GgufValue.Of(value));
    public GgufWriter Add(string key, uint value) => Add(key, GgufValue.Of(value));
    public GgufWriter Add(string key, int value) => Add(key, GgufValue.Of(value));
    public GgufWriter Add(string key, float value) => Add(key, GgufValue.Of(value));
    public GgufWriter Add(string key, bool value) => Add(key, GgufValue.Of(value));
    public GgufWriter Add(string key, GgufArray value) => Add(key, GgufValue.Of(value));

    /// <summary>
    /// Adds a tensor. <paramref name="dimensions"/> are innermost-first (GGUF order);
    /// <paramref name="data"/> must hold exactly the bytes the type and shape need.
    /// </summary>
    public GgufWriter AddTensor(string name, GgmlType type, long[] dimensions, byte[] data)
    {
        var expected = ExpectedBytes(name, type, dimensions);
        if (expected != data.Length)
            throw new ArgumentException($"tensor {name}: {type} [{string.Join(", ", dimensions)}] needs {expected} bytes; got {data.Length}", nameof(data));
        _tensors.Add((name, type, (long[])dimensions.Clone(), expected, data, null));
        return this;
    }

    /// <summary>
    /// Adds a tensor whose bytes <paramref name="write"/> produces while the file is written, so
    /// tensors larger than memory (or than one array) can be streamed. It must write exactly the
    /// bytes the type and shape need; the writer checks when the stream can tell its position.
    /// </summary>
    public GgufWriter AddTensor(string name, GgmlType type, long[] dimensions, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        _tensors.Add((name, type, (long[])dimensions.Clone(), ExpectedBytes(name, type, dimensions), null, write));
        return this;
    }

    private long ExpectedBytes(string name, GgmlType type, long[] dimensions)
    {
        if (_tensors.Any(t => t.Name == name)) throw new ArgumentException($"tensor {name} was already added", nameof(name));
        long elements = 1;
        foreach (var d in dimensions) elements = checked(elements * d);
        return GgmlTypes.ByteSize(type, elements);
    }

    public void WriteTo(string path)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        WriteTo(stream);
    }

    public void WriteTo(Stream stream)
    {
        // The header goes through a buffer first so its length (and so the padding before the
        // data section) is known without requiring a seekable stream.
        var header = new MemoryStream();
        using (var h = new BinaryWriter(header, Encoding.UTF8, leaveOpen: true))
        {
            h.Write(GgufFile.Magic);
            h.Write(3u);
            h.Write((ulong)_tensors.Count);
            h.Write((ulong)_metadata.Count);
            foreach (var (key, value) in _metadata)
            {
                WriteString(h, key);
                h.Write((uint)value.Type);
                WriteValue(h, value.Type, value.Raw);
            }
            long offset = 0;
            foreach (var (name, type, dims, size, _, _) in _tensors)
            {
                WriteString(h, name);
                h.Write((uint)dims.Length);
                foreach (var d in dims) h.Write((ulong)d);
                h.Write((uint)type);
                h.Write((ulong)offset);
                offset = AlignUp(offset + size);
            }
        }
        using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write(header.GetBuffer(), 0, (int)header.Length);
        Pad(w, AlignUp(header.Length) - header.Length);
        foreach (var (name, _, _, size, data, write) in _tensors)
        {
            if (data is not null)
            {
                w.Write(data);
            }
            else
            {
                w.Flush();
                var start = stream.CanSeek ? stream.Position : -1;
                write!(stream);
                if (start >= 0 && stream.Position - start != size)
                    throw new InvalidOperationException($"tensor {name}: its writer produced {stream.Position - start} bytes; the type and shape need {size}");
            }
            Pad(w, AlignUp(size) - size);
        }
    }

    private long AlignUp(long value) => (value + Alignment - 1) / Alignment * Alignment;

    private static void Pad(BinaryWriter w, long count)
    {
        for (var i = 0; i < count; i++) w.Write((byte)0);
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteValue(BinaryWriter w, GgufValueType type, object raw)
    {
        switch (type)
        {
            case GgufValueType.UInt8: w.Write(Convert.ToByte(raw)); break;
            case GgufValueType.Int8: w.Write(Convert.ToSByte(raw)); break;
            case GgufValueType.UInt16: w.Write(Convert.ToUInt16(raw)); break;
            case GgufValueType.Int16: w.Write(Convert.ToInt16(raw)); break;
            case GgufValueType.UInt32: w.Write(Convert.ToUInt32(raw)); break;
            case GgufValueType.Int32: w.Write(Convert.ToInt32(raw)); break;
            case GgufValueType.Float32: w.Write(Convert.ToSingle(raw)); break;
            case GgufValueType.Bool: w.Write((bool)raw ? (byte)1 : (byte)0); break;
            case GgufValueType.String: WriteString(w, (string)raw); break;
            case GgufValueType.UInt64: w.Write(Convert.ToUInt64(raw)); break;
            case GgufValueType.Int64: w.Write(Convert.ToInt64(raw)); break;
            case GgufValueType.Float64: w.Write(Convert.ToDouble(raw)); break;
            case GgufValueType.Array:
                var array = (GgufArray)raw;
                w.Write((uint)array.ElementType);
                w.Write((ulong)array.Count);
                foreach (var item in array.Items) WriteValue(w, array.ElementType, item!);
                break;
            default: throw new ArgumentOutOfRangeException(nameof(type), type, "unknown GGUF value type");
        }
    }
}
