namespace Bulwark.Engine.Formats.Gguf;

/// <summary>Parses and validates a GGUF header (magic, metadata, tensor table) over a mapped file.</summary>
internal static unsafe class GgufHeaderParser
{
    public delegate GgufFile Factory(uint version, List<KeyValuePair<string, GgufValue>> metadata,
        List<GgufTensorInfo> tensors, uint alignment, long dataOffset);

    // Smallest encodings: a kv is key length (8) + type (4) + 1 value byte; a tensor info is
    // name length (8) + n_dims (4) + type (4) + offset (8).
    private const int MinimumKvBytes = 13;
    private const int MinimumTensorInfoBytes = 24;

    public static GgufFile Parse(MappedFile mapped, GgufLimits limits, Factory create)
    {
        var c = new GgufCursor(mapped.Pointer, mapped.Length, mapped.Path);
        var magic = c.ReadUInt32("magic");
        if (magic != GgufFile.Magic)
            throw c.Error("magic", $"expected \"GGUF\" (0x{GgufFile.Magic:X8}); got 0x{magic:X8}");
        var version = c.ReadUInt32("version");
        if (version is not (2 or 3))
            throw c.Error("version", $"only GGUF versions 2 and 3 are supported; got {version}" +
                (version > 0xFFFF ? " (a big-endian file?)" : ""));

        var tensorCount = ReadBoundedCount(ref c, "tensor_count", MinimumTensorInfoBytes, limits.MaxTensors);
        var kvCount = ReadBoundedCount(ref c, "metadata_kv_count", MinimumKvBytes, limits.MaxMetadataEntries);

        var metadata = new List<KeyValuePair<string, GgufValue>>(kvCount);
        var seenKeys = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < kvCount; i++)
        {
            var key = c.ReadString($"metadata[{i}].key");
            if (!seenKeys.Add(key)) throw c.Error(key, "metadata key appears twice");
            var typeId = c.ReadUInt32($"{key}.type");
            if (!GgufValueTypes.IsDefined(typeId)) throw c.Error(key, $"unknown metadata value type {typeId}");
            metadata.Add(new(key, ReadValue(ref c, (GgufValueType)typeId, key, 0, limits)));
        }

        var alignment = GgufFile.DefaultAlignment;
        var alignmentEntry = metadata.FirstOrDefault(kv => kv.Key == "general.alignment").Value;
        if (alignmentEntry is not null)
        {
            if (alignmentEntry.Raw is not uint a || a == 0 || (a & (a - 1)) != 0)
                throw c.Error("general.alignment", $"must be a u32 power of two; got {alignmentEntry.Type} {alignmentEntry}");
            alignment = a;
        }

        var infos = new List<(string Name, GgmlType Type, long[] Dims, ulong Offset, long Size)>(tensorCount);
        var seenNames = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < tensorCount; i++)
        {
            var name = c.ReadString($"tensor[{i}].name");
            if (!seenNames.Add(name)) throw c.Error(name, "tensor name appears twice");
            infos.Add(ReadTensorInfo(ref c, name, alignment, limits));
        }

        var dataOffset = AlignUp(c.Position, alignment);
        if (dataOffset > mapped.Length && tensorCount > 0)
            throw c.Error("tensor_data", $"data section would start at {dataOffset} but the file has {mapped.Length} bytes (truncated)");

        var tensors = new List<GgufTensorInfo>(tensorCount);
        foreach (var (name, type, dims, offset, size) in infos)
        {
            var dataRoom = mapped.Length - dataOffset;
            if (offset > (ulong)dataRoom || (ulong)size > (ulong)dataRoom - offset)
                throw c.Error(name, $"data at offset {offset} with {size} bytes ends past the data section of {Math.Max(0, dataRoom)} bytes");
            tensors.Add(new GgufTensorInfo(name, type, dims, dataOffset + (long)offset, size));
        }
        CheckNoOverlap(ref c, tensors);
        return create(version, metadata, tensors, alignment, dataOffset);
    }

    private static int ReadBoundedCount(ref GgufCursor c, string field, int minimumBytes, int limit)
    {
        var count = c.ReadCount(field, minimumBytes);
        if (count > limit) throw c.Error(field, $"{count} exceeds the limit {limit}");
        return count;
    }

    private static (string, GgmlType, long[], ulong, long) ReadTensorInfo(ref GgufCursor c, string name, uint alignment, GgufLimits limits)
    {
        var nDims = c.ReadUInt32($"{name}.n_dims");
        if (nDims == 0 || nDims > limits.MaxDimensions)
            throw c.Error(name, $"n_dims must be between 1 and {limits.MaxDimensions}; got {nDims}");
        var dims = new long[nDims];
        long elements = 1;
        for (var d = 0; d < nDims; d++)
        {
            var size = c.ReadUInt64($"{name}.ne[{d}]");
            if (size == 0 || size > long.MaxValue)
                throw c.Error(name, $"dimension {d} must be between 1 and {long.MaxValue}; got {size}");
            dims[d] = (long)size;
            if (elements > long.MaxValue / dims[d])
                throw c.Error(name, $"element count of shape [{string.Join(", ", dims.Take(d + 1))}] overflows 64 bits");
            elements *= dims[d];
        }
        var typeId = c.ReadUInt32($"{name}.type");
        if (!GgmlTypes.IsKnown(typeId)) throw c.Error(name, $"unknown ggml type {typeId}");
        var type = (GgmlType)typeId;
        if (dims[0] % GgmlTypes.BlockSize(type) != 0)
            throw c.Error(name, $"row length {dims[0]} is not a multiple of the {type} block size {GgmlTypes.BlockSize(type)}");
        var bytes = GgmlTypes.ByteSize(type, elements);
        if (bytes < 0) throw c.Error(name, $"byte size of {elements} {type} elements overflows 64 bits");
        var offset = c.ReadUInt64($"{name}.offset");
        if (offset % alignment != 0)
            throw c.Error(name, $"offset {offset} is not a multiple of the alignment {alignment}");
        return (name, type, dims, offset, bytes);
    }

    private static void CheckNoOverlap(ref GgufCursor c, List<GgufTensorInfo> tensors)
    {
        var sorted = tensors.OrderBy(t => t.FileOffset).ToList();
        for (var i = 1; i < sorted.Count; i++)
        {
            var previous = sorted[i - 1];
            if (sorted[i].FileOffset < previous.FileOffset + previous.ByteSize)
                throw c.Error(sorted[i].Name, $"data at {sorted[i].FileOffset} overlaps tensor {previous.Name} ({previous.FileOffset}..{previous.FileOffset + previous.ByteSize})");
        }
    }

    private static GgufValue ReadValue(ref GgufCursor c, GgufValueType type, string field, int depth, GgufLimits limits) => type switch
    {
        GgufValueType.UInt8 => new(type, c.ReadByte(field)),
        GgufValueType.Int8 => new(type, (sbyte)c.ReadByte(field)),
        GgufValueType.UInt16 => new(type, c.ReadUInt16(field)),
        GgufValueType.Int16 => new(type, (short)c.ReadUInt16(field)),
        GgufValueType.UInt32 => new(type, c.ReadUInt32(field)),
        GgufValueType.Int32 => new(type, (int)c.ReadUInt32(field)),
        GgufValueType.Float32 => new(type, c.ReadSingle(field)),
        GgufValueType.Bool => new(type, c.ReadBool(field)),
        GgufValueType.String => new(type, c.ReadString(field)),
        GgufValueType.UInt64 => new(type, c.ReadUInt64(field)),
        GgufValueType.Int64 => new(type, (long)c.ReadUInt64(field)),
        GgufValueType.Float64 => new(type, c.ReadDouble(field)),
        GgufValueType.Array => new(type, ReadArray(ref c, field, depth + 1, limits)),
        _ => throw c.Error(field, $"unknown metadata value type {(uint)type}"),
    };

    private static GgufArray ReadArray(ref GgufCursor c, string field, int depth, GgufLimits limits)
    {
        if (depth > limits.MaxArrayDepth)
            throw c.Error(field, $"arrays nested {depth} deep exceed the limit {limits.MaxArrayDepth}");
        var typeId = c.ReadUInt32($"{field}.element_type");
        if (!GgufValueTypes.IsDefined(typeId)) throw c.Error(field, $"unknown array element type {typeId}");
        var elementType = (GgufValueType)typeId;
        var count = c.ReadCount($"{field}.count", GgufValueTypes.MinimumSize(elementType));
        if (count > limits.MaxArrayLength)
            throw c.Error(field, $"array of {count} elements exceeds the limit {limits.MaxArrayLength}");
        return elementType switch
        {
            GgufValueType.UInt8 => new(elementType, Fill(ref c, count, field, static (ref GgufCursor k, string f) => k.ReadByte(f))),
            GgufValueType.Int8 => new(elementType, Fill(ref c, count, field, static (ref GgufCursor k, string f) => (sbyte)k.ReadByte(f))),
            GgufValueType.UInt16 => new(elementType, Fill(ref c, count, field, static (ref GgufCursor k, string f) => k.ReadUInt16(f))),
            GgufValueType.Int16 => new(elementType, Fill(ref c, count, field, static (ref GgufCursor k, string f) => (short)k.ReadUInt16(f))),
            GgufValueType.UInt32 => new(elementType, Fill(ref c, count, field, static (ref GgufCursor k, string f) => k.ReadUInt32(f))),
            GgufValueType.Int32 => new(elementType, Fill(ref c, count, field, static (ref GgufCursor k, string f) => (int)k.ReadUInt32(f))),
            GgufValueType.Float32 => new(elementType, Fill(ref c, count, field, static (ref GgufCursor k, string f) => k.ReadSingle(f))),
            GgufValueType.Bool => new(elementType, Fill(ref c, count, field, static (ref GgufCursor k, string f) => k.ReadBool(f))),
            GgufValueType.String => new(elementType, Fill(ref c, count, field, static (ref GgufCursor k, string f) => k.ReadString(f))),
            GgufValueType.UInt64 => new(elementType, Fill(ref c, count, field, static (ref GgufCursor k, string f) => k.ReadUInt64(f))),
            GgufValueType.Int64 => new(elementType, Fill(ref c, count, field, static (ref GgufCursor k, string f) => (long)k.ReadUInt64(f))),
            GgufValueType.Float64 => new(elementType, Fill(ref c, count, field, static (ref GgufCursor k, string f) => k.ReadDouble(f))),
            GgufValueType.Array => new(elementType, ReadNested(ref c, count, field, depth, limits)),
            _ => throw c.Error(field, $"unknown array element type {typeId}"),
        };
    }

    private delegate T ElementReader<T>(ref GgufCursor c, string field);

    private static T[] Fill<T>(ref GgufCursor c, int count, string field, ElementReader<T> read)
    {
        var items = new T[count];
        for (var i = 0; i < count; i++) items[i] = read(ref c, field);
        return items;
    }

    private static GgufArray[] ReadNested(ref GgufCursor c, int count, string field, int depth, GgufLimits limits)
    {
        var items = new GgufArray[count];
        for (var i = 0; i < count; i++) items[i] = ReadArray(ref c, $"{field}[{i}]", depth + 1, limits);
        return items;
    }

    private static long AlignUp(long value, uint alignment) => (value + alignment - 1) / alignment * alignment;
}
