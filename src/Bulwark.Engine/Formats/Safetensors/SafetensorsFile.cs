namespace Bulwark.Engine.Formats.Safetensors;

/// <summary>
/// One safetensors file opened read-only through a memory map: an 8-byte little-endian header
/// length, a JSON header (tensor name → dtype, shape, data_offsets; optional <c>__metadata__</c>),
/// then the data. Every offset, size and shape is checked against the real file before use.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private readonly MappedFile _mapped;
    private readonly Dictionary<string, SafetensorsTensorInfo> _tensorsByName;

    private SafetensorsFile(MappedFile mapped, SafetensorsHeaderParser.Header header)
    {
        _mapped = mapped;
        DataOffset = header.DataOffset;
        Tensors = header.Tensors;
        Metadata = header.Metadata;
        _tensorsByName = header.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    public string Path => _mapped.Path;

    /// <summary>Absolute file offset where the data buffer starts (8 + header length).</summary>
    public long DataOffset { get; }

    /// <summary>Tensors in header order.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }

    /// <summary>The free-form <c>__metadata__</c> string map (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public static SafetensorsFile Open(string path, SafetensorsLimits? limits = null)
    {
        var mapped = MappedFile.Open(path);
        try
        {
            return new SafetensorsFile(mapped, SafetensorsHeaderParser.Parse(mapped, limits ?? SafetensorsLimits.Default));
        }
        catch
        {
            mapped.Dispose();
            throw;
        }
    }

    public bool TryGetTensor(string name, out SafetensorsTensorInfo info) => _tensorsByName.TryGetValue(name, out info!);

    public SafetensorsTensorInfo GetTensor(string name) =>
        _tensorsByName.TryGetValue(name, out var info)
            ? info
            : throw new ModelFormatException(Path, name, "tensor is missing");

    /// <summary>Pointer to a tensor's first byte; valid while this file is open. Not necessarily aligned.</summary>
    public byte* TensorPointer(SafetensorsTensorInfo tensor) => _mapped.Pointer + tensor.FileOffset;

    /// <summary>A tensor's bytes as a span (tensors over 2 GiB must use <see cref="TensorPointer"/>).</summary>
    public ReadOnlySpan<byte> TensorBytes(SafetensorsTensorInfo tensor)
    {
        if (tensor.ByteSize > int.MaxValue)
            throw new ModelFormatException(Path, tensor.Name, $"tensor of {tensor.ByteSize} bytes is too large for a span; use TensorPointer");
        return tensor.ByteSize == 0 ? default : new ReadOnlySpan<byte>(TensorPointer(tensor), (int)tensor.ByteSize);
    }

    public void Dispose() => _mapped.Dispose();
}
