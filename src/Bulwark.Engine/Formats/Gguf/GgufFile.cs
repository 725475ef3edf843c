namespace Bulwark.Engine.Formats.Gguf;

/// <summary>
/// A GGUF v2/v3 file opened read-only through a memory map: its metadata, its tensor table and
/// pointers to tensor data. Every count, length, offset and size in the header is checked
/// against the real file before use (llama.cpp shipped heap overflows here: CVE-2024-21802).
/// </summary>
public sealed unsafe class GgufFile : IDisposable
{
    public const uint Magic = 0x46554747; // "GGUF" read as a little-endian u32
    public const uint DefaultAlignment = 32;

    private readonly MappedFile _mapped;
    private readonly Dictionary<string, GgufValue> _metadata;
    private readonly Dictionary<string, GgufTensorInfo> _tensorsByName;

    private GgufFile(MappedFile mapped, uint version, List<KeyValuePair<string, GgufValue>> metadata,
        List<GgufTensorInfo> tensors, uint alignment, long dataOffset)
    {
        _mapped = mapped;
        Version = version;
        MetadataInOrder = metadata;
        _metadata = new Dictionary<string, GgufValue>(metadata, StringComparer.Ordinal);
        Tensors = tensors;
        _tensorsByName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        Alignment = alignment;
        DataOffset = dataOffset;
    }

    public string Path => _mapped.Path;

    public uint Version { get; }

    public IReadOnlyList<KeyValuePair<string, GgufValue>> MetadataInOrder { get; }

    public IReadOnlyDictionary<string, GgufValue> Metadata => _metadata;

    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    public uint Alignment { get; }

    /// <summary>Absolute file offset where the tensor data section starts.</summary>
    public long DataOffset { get; }

    public static GgufFile Open(string path, GgufLimits? limits = null)
    {
        var mapped = MappedFile.Open(path);
        try
        {
            return GgufHeaderParser.Parse(mapped, limits ?? GgufLimits.Default,
                (version, metadata, tensors, alignment, dataOffset) =>
                    new GgufFile(mapped, version, metadata, tensors, alignment, dataOffset));
        }
        catch
        {
            mapped.Dispose();
            throw;
        }
    }

    public bool TryGetTensor(string name, out GgufTensorInfo info) => _tensorsByName.TryGetValue(name, out info!);

    public GgufTensorInfo GetTensor(string name) =>
        _tensorsByName.TryGetValue(name, out var info)
            ? info
            : throw new ModelFormatException(Path, name, "tensor is missing");

    /// <summary>Pointer to a tensor's first byte; valid while this file is open.</summary>
    public byte* TensorPointer(GgufTensorInfo tensor) => _mapped.Pointer + tensor.FileOffset;

    /// <summary>A tensor's bytes as a span (tensors over 2 GiB must use <see cref="TensorPointer"/>).</summary>
    public ReadOnlySpan<byte> TensorBytes(GgufTensorInfo tensor)
    {
        if (tensor.ByteSize > int.MaxValue)
            throw new ModelFormatException(Path, tensor.Name, $"tensor of {tensor.ByteSize} bytes is too large for a span; use TensorPointer");
        return new ReadOnlySpan<byte>(TensorPointer(tensor), (int)tensor.ByteSize);
    }

    public bool TryGet(string key, out GgufValue value) => _metadata.TryGetValue(key, out value!);

    public string GetString(string key) => Get(key).Raw as string ?? throw WrongType(key, "a string");

    public string? GetStringOrNull(string key) => TryGet(key, out var v) ? v.Raw as string ?? throw WrongType(key, "a string") : null;

    public long GetInteger(string key) => Get(key).AsInteger() ?? throw WrongType(key, "an integer");

    public long? GetIntegerOrNull(string key) => TryGet(key, out var v) ? v.AsInteger() ?? throw WrongType(key, "an integer") : null;

    public double? GetFloatOrNull(string key) => TryGet(key, out var v) ? v.AsFloat() ?? throw WrongType(key, "a float") : null;

    public bool? GetBoolOrNull(string key) => TryGet(key, out var v) ? v.Raw as bool? ?? throw WrongType(key, "a bool") : null;

    public GgufArray? GetArrayOrNull(string key) => TryGet(key, out var v) ? v.Raw as GgufArray ?? throw WrongType(key, "an array") : null;

    public T[]? GetArrayOrNull<T>(string key)
    {
        var array = GetArrayOrNull(key);
        if (array is null) return null;
        return array.Items as T[] ?? throw WrongType(key, $"an array of {typeof(T).Name}");
    }

    private GgufValue Get(string key) =>
        _metadata.TryGetValue(key, out var v) ? v : throw new ModelFormatException(Path, key, "metadata key is missing");

    private ModelFormatException WrongType(string key, string expected) =>
        new(Path, key, $"expected {expected}; got {_metadata[key].Type} {_metadata[key]}");

    public void Dispose() => _mapped.Dispose();
}
