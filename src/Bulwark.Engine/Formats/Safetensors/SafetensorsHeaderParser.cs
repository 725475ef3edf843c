using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Bulwark.Engine.Formats.Safetensors;

/// <summary>
/// Parses and validates a safetensors header: the u64 LE length, the JSON object of tensors and
/// <c>__metadata__</c>, then every tensor's dtype, shape and data offsets against the real file.
/// The JSON is read token by token straight from the memory map (no copy, no document tree).
/// </summary>
internal static unsafe class SafetensorsHeaderParser
{
    public const int LengthPrefixBytes = 8;
    public const string MetadataKey = "__metadata__";

    // The header's structure is root object → tensor object → shape array; deeper input is hostile.
    private const int MaxJsonDepth = 3;

    public readonly record struct Header(long DataOffset, List<SafetensorsTensorInfo> Tensors, Dictionary<string, string> Metadata);

    private sealed record RawTensor(string Name, string DType, long[] Shape, ulong Begin, ulong End);

    public static Header Parse(MappedFile mapped, SafetensorsLimits limits)
    {
        var file = mapped.Path;
        if (mapped.Length < LengthPrefixBytes)
            throw new ModelFormatException(file, "header_length", $"needs 8 bytes but the file has {mapped.Length} (truncated)");
        var length = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(mapped.Pointer, LengthPrefixBytes));
        if (length > (ulong)limits.MaxHeaderBytes)
            throw new ModelFormatException(file, "header_length", $"{length} exceeds the limit of {limits.MaxHeaderBytes} bytes");
        var available = mapped.Length - LengthPrefixBytes;
        if (length > (ulong)available)
            throw new ModelFormatException(file, "header_length", $"{length} but only {available} bytes follow the length (truncated)");
        if (length < 2)
            throw new ModelFormatException(file, "header_length", $"{length} bytes cannot hold a JSON object");
        var json = new ReadOnlySpan<byte>(mapped.Pointer + LengthPrefixBytes, (int)length);
        if (json[0] != (byte)'{')
            throw new ModelFormatException(file, "header", $"must start with '{{'; got byte 0x{json[0]:X2}");

        var (raw, metadata) = ReadJson(json, file, limits);
        var dataOffset = LengthPrefixBytes + (long)length;
        var tensors = Validate(raw, file, mapped.Length - dataOffset, dataOffset);
        return new Header(dataOffset, tensors, metadata);
    }

    private static (List<RawTensor>, Dictionary<string, string>) ReadJson(ReadOnlySpan<byte> json, string file, SafetensorsLimits limits)
    {
        var tensors = new List<RawTensor>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        Dictionary<string, string>? metadata = null;
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = MaxJsonDepth });
        try
        {
            JsonTokens.Next(ref reader, file, "header");
            while (JsonTokens.Next(ref reader, file, "header") == JsonTokenType.PropertyName)
            {
                var key = JsonTokens.Text(ref reader, file, "header key", LengthPrefixBytes);
                if (key == MetadataKey)
                {
                    if (metadata is not null) throw new ModelFormatException(file, MetadataKey, "appears twice");
                    metadata = ReadMetadata(ref reader, file, limits);
                    continue;
                }
                if (!names.Add(key)) throw new ModelFormatException(file, ShownText.Of(key), "tensor name appears twice");
                if (tensors.Count == limits.MaxTensors)
                    throw new ModelFormatException(file, "header", $"more than the limit of {limits.MaxTensors} tensors");
                tensors.Add(ReadTensor(ref reader, key, file, limits));
            }
            // Only whitespace may follow the root object; the reader throws on anything else.
            while (reader.Read()) { }
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(file, "header", $"is not valid JSON: {e.Message}", e);
        }
        return (tensors, metadata ?? new Dictionary<string, string>(StringComparer.Ordinal));
    }

    private static Dictionary<string, string> ReadMetadata(ref Utf8JsonReader reader, string file, SafetensorsLimits limits)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var token = JsonTokens.Next(ref reader, file, MetadataKey);
        if (token == JsonTokenType.Null) return metadata;
        if (token != JsonTokenType.StartObject)
            throw new ModelFormatException(file, MetadataKey, $"must be an object of strings; got {token}");
        while (JsonTokens.Next(ref reader, file, MetadataKey) == JsonTokenType.PropertyName)
        {
            var key = JsonTokens.Text(ref reader, file, $"{MetadataKey} key", LengthPrefixBytes);
            var field = $"{MetadataKey}.{ShownText.Of(key)}";
            if (JsonTokens.Next(ref reader, file, field) != JsonTokenType.String)
                throw new ModelFormatException(file, field, $"must be a string; got {reader.TokenType}");
            if (metadata.Count == limits.MaxMetadataEntries)
                throw new ModelFormatException(file, MetadataKey, $"more than the limit of {limits.MaxMetadataEntries} entries");
            if (!metadata.TryAdd(key, JsonTokens.Text(ref reader, file, field, LengthPrefixBytes)))
                throw new ModelFormatException(file, field, "appears twice");
        }
        return metadata;
    }

    private static RawTensor ReadTensor(ref Utf8JsonReader reader, string name, string file, SafetensorsLimits limits)
    {
        var shown = ShownText.Of(name);
        if (JsonTokens.Next(ref reader, file, shown) != JsonTokenType.StartObject)
            throw new ModelFormatException(file, shown, $"must be an object with dtype, shape and data_offsets; got {reader.TokenType}");
        string? dtype = null;
        long[]? shape = null;
        ulong[]? offsets = null;
        while (JsonTokens.Next(ref reader, file, shown) == JsonTokenType.PropertyName)
        {
            var property = JsonTokens.Text(ref reader, file, $"{shown} field", LengthPrefixBytes);
            var field = $"{shown}.{ShownText.Of(property)}";
            switch (property)
            {
                case "dtype" when dtype is null:
                    if (JsonTokens.Next(ref reader, file, field) != JsonTokenType.String)
                        throw new ModelFormatException(file, field, $"must be a string; got {reader.TokenType}");
                    dtype = JsonTokens.Text(ref reader, file, field, LengthPrefixBytes);
                    break;
                case "shape" when shape is null:
                    shape = ReadIntegers(ref reader, file, field, limits.MaxDimensions)
                        .Select(d => d <= long.MaxValue ? (long)d : throw new ModelFormatException(file, field, $"dimension {d} exceeds {long.MaxValue}"))
                        .ToArray();
                    break;
                case "data_offsets" when offsets is null:
                    offsets = ReadIntegers(ref reader, file, field, 2);
                    if (offsets.Length != 2)
                        throw new ModelFormatException(file, field, $"must hold exactly 2 numbers [begin, end]; got {offsets.Length}");
                    break;
                case "dtype" or "shape" or "data_offsets":
                    throw new ModelFormatException(file, field, "appears twice");
                default:
                    throw new ModelFormatException(file, field, "unknown field (a tensor has dtype, shape and data_offsets)");
            }
        }
        if (dtype is null) throw new ModelFormatException(file, $"{shown}.dtype", "is missing");
        if (shape is null) throw new ModelFormatException(file, $"{shown}.shape", "is missing");
        if (offsets is null) throw new ModelFormatException(file, $"{shown}.data_offsets", "is missing");
        return new RawTensor(name, dtype, shape, offsets[0], offsets[1]);
    }

    /// <summary>An array of at most <paramref name="maxCount"/> non-negative integers.</summary>
    private static ulong[] ReadIntegers(ref Utf8JsonReader reader, string file, string field, int maxCount)
    {
        if (JsonTokens.Next(ref reader, file, field) != JsonTokenType.StartArray)
            throw new ModelFormatException(file, field, $"must be an array of integers; got {reader.TokenType}");
        var values = new List<ulong>();
        while (JsonTokens.Next(ref reader, file, field) != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetUInt64(out var value))
                throw new ModelFormatException(file, field, $"must hold non-negative integers below 2^64; got {reader.TokenType} {ShownText.Of(Encoding.UTF8.GetString(reader.ValueSpan))}");
            if (values.Count == maxCount)
                throw new ModelFormatException(file, field, $"holds more than {maxCount} numbers");
            values.Add(value);
        }
        return values.ToArray();
    }

    private static List<SafetensorsTensorInfo> Validate(List<RawTensor> raw, string file, long dataLength, long dataOffset)
    {
        var tensors = new List<SafetensorsTensorInfo>(raw.Count);
        foreach (var t in raw)
        {
            var shown = ShownText.Of(t.Name);
            var type = SafetensorsDTypes.ToGgml(t.DType) ?? throw new ModelFormatException(file, $"{shown}.dtype",
                (SafetensorsDTypes.IsDefined(t.DType) ? $"\"{t.DType}\" is not supported" : $"\"{ShownText.Of(t.DType)}\" is not a safetensors dtype")
                + $" (supported: {SafetensorsDTypes.Supported})");
            var elements = 1L;
            foreach (var d in t.Shape)
            {
                if (d != 0 && elements > long.MaxValue / d)
                    throw new ModelFormatException(file, $"{shown}.shape", $"element count of [{string.Join(", ", t.Shape)}] overflows 64 bits");
                elements *= d;
            }
            var bytes = GgmlTypes.ByteSize(type, elements);
            if (bytes < 0)
                throw new ModelFormatException(file, $"{shown}.shape", $"byte size of [{string.Join(", ", t.Shape)}] {t.DType} overflows 64 bits");
            if (t.Begin > t.End)
                throw new ModelFormatException(file, $"{shown}.data_offsets", $"begin {t.Begin} is after end {t.End}");
            if (t.End > (ulong)dataLength)
                throw new ModelFormatException(file, $"{shown}.data_offsets", $"end {t.End} is past the {dataLength} bytes of data (truncated?)");
            if (t.End - t.Begin != (ulong)bytes)
                throw new ModelFormatException(file, $"{shown}.data_offsets",
                    $"[{t.Begin}, {t.End}] holds {t.End - t.Begin} bytes but shape [{string.Join(", ", t.Shape)}] of {t.DType} needs {bytes}");
            tensors.Add(new SafetensorsTensorInfo(t.Name, t.DType, type, t.Shape, dataOffset + (long)t.Begin, bytes));
        }
        CheckNoOverlap(tensors, file, dataOffset);
        return tensors;
    }

    private static void CheckNoOverlap(List<SafetensorsTensorInfo> tensors, string file, long dataOffset)
    {
        // Empty tensors own no bytes, so they cannot overlap anything.
        var sorted = tensors.Where(t => t.ByteSize > 0).OrderBy(t => t.FileOffset).ToList();
        for (var i = 1; i < sorted.Count; i++)
        {
            var previous = sorted[i - 1];
            if (sorted[i].FileOffset < previous.FileOffset + previous.ByteSize)
                throw new ModelFormatException(file, $"{ShownText.Of(sorted[i].Name)}.data_offsets",
                    $"data at {sorted[i].FileOffset - dataOffset} overlaps tensor {ShownText.Of(previous.Name)} " +
                    $"({previous.FileOffset - dataOffset}..{previous.FileOffset - dataOffset + previous.ByteSize})");
        }
    }
}
