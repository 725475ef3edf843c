using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Bulwark.Engine.Formats.Safetensors;

/// <summary>
/// Builds a <c>.safetensors</c> file: an 8-byte little-endian header length, a JSON header
/// (<c>{"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}</c>) padded with spaces
/// to 8 bytes, then the tensors' bytes back to back. Output is a pure function of what was added
/// and in which order. Writes F32, F16, BF16 and I32 (AWQ/GPTQ's packed weights): safetensors has no ggml block-quantized types.
/// </summary>
public sealed class SafetensorsWriter
{
    private readonly List<(string Name, GgmlType Type, long[] Shape, byte[] Data)> _tensors = [];
    private readonly List<KeyValuePair<string, string>> _metadata = [new("format", "pt")];

    /// <summary>The safetensors dtype name of a ggml type this writer can store.</summary>
    public static string DTypeName(GgmlType type) => type switch
    {
        GgmlType.F32 => "F32",
        GgmlType.F16 => "F16",
        GgmlType.BF16 => "BF16",
        GgmlType.I32 => "I32",
        _ => throw new NotSupportedException($"safetensors cannot hold {type} (F32, F16, BF16 and I32 can be written; ggml's quantized blocks belong in GGUF)"),
    };

    public SafetensorsWriter AddMetadata(string key, string value)
    {
        if (_metadata.Any(kv => kv.Key == key)) throw new ArgumentException($"metadata key {key} was already added", nameof(key));
        _metadata.Add(new(key, value));
        return this;
    }

    /// <summary>Adds a tensor; <paramref name="shape"/> is outermost-first (PyTorch order), <paramref name="data"/> row-major little-endian.</summary>
    public SafetensorsWriter AddTensor(string name, GgmlType type, long[] shape, byte[] data)
    {
        DTypeName(type);
        if (name == "__metadata__" || _tensors.Any(t => t.Name == name))
            throw new ArgumentException($"tensor name {name} is reserved or was already added", nameof(name));
        long elements = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"tensor {name}: dimension {d} is negative", nameof(shape));
            elements = checked(elements * d);
        }
        var expected = GgmlTypes.ByteSize(type, elements);
        if (expected != data.Length)
            throw new ArgumentException($"tensor {name}: {type} [{string.Join(", ", shape)}] needs {expected} bytes; got {data.Length}", nameof(data));
        _tensors.Add((name, type, (long[])shape.Clone(), data));
        return this;
    }

    public void WriteTo(string path)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        WriteTo(stream);
    }

    public void WriteTo(Stream stream)
    {
        var header = Header();
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        foreach (var (_, _, _, data) in _tensors) stream.Write(data);
    }

    private byte[] Header()
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject("__metadata__");
            foreach (var (key, value) in _metadata) json.WriteString(key, value);
            json.WriteEndObject();
            long offset = 0;
            foreach (var (name, type, shape, data) in _tensors)
            {
                json.WriteStartObject(name);
                json.WriteString("dtype", DTypeName(type));
                json.WriteStartArray("shape");
                foreach (var d in shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + data.Length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += data.Length;
            }
            json.WriteEndObject();
        }
        // Pad with spaces so the data starts 8-byte aligned, as the Rust reference writer does.
        var padding = (int)((8 - buffer.Length % 8) % 8);
        for (var i = 0; i < padding; i++) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }
}
