using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Formats;

/// <summary>
/// Builds safetensors files byte by byte for tests: valid ones from tensors (offsets assigned
/// back to back, as the reference writer does) and arbitrary ones from a raw header, so tests
/// and the hostile corpus can say exactly which byte is wrong. Independent of the engine's code.
/// </summary>
internal static class SafetensorsBytes
{
    public sealed record Tensor(string Name, string DType, long[] Shape, byte[] Data);

    /// <summary>A header JSON object for <paramref name="tensors"/> with back-to-back offsets.</summary>
    public static string Header(IEnumerable<Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream))
        {
            json.WriteStartObject();
            if (metadata is not null)
            {
                json.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) json.WriteString(k, v);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in tensors)
            {
                json.WriteStartObject(t.Name);
                json.WriteString("dtype", t.DType);
                json.WriteStartArray("shape");
                foreach (var d in t.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + t.Data.Length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += t.Data.Length;
            }
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    public static byte[] Build(IEnumerable<Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        return Raw(Encoding.UTF8.GetBytes(Header(list, metadata)), list.SelectMany(t => t.Data).ToArray());
    }

    /// <summary>u64 LE header length + header (padded with spaces to 8 bytes, as the reference writer does) + data.</summary>
    public static byte[] Raw(byte[] header, byte[] data, bool pad = true)
    {
        var padded = pad ? (header.Length + 7) / 8 * 8 : header.Length;
        var bytes = new byte[8 + padded + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)padded);
        header.CopyTo(bytes, 8);
        bytes.AsSpan(8 + header.Length, padded - header.Length).Fill((byte)' ');
        data.CopyTo(bytes, 8 + padded);
        return bytes;
    }

    public static byte[] Raw(string header, byte[] data) => Raw(Encoding.UTF8.GetBytes(header), data);

    public static Tensor F32(string name, long[] shape, params float[] values)
    {
        var data = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), values[i]);
        return new Tensor(name, "F32", shape, data);
    }

    public static string Write(byte[] bytes, string name = "model.safetensors", string? folder = null)
    {
        var path = Path.Combine(folder ?? Fixtures.NewTempDirectory("safetensors"), name);
        System.IO.File.WriteAllBytes(path, bytes);
        return path;
    }
}
