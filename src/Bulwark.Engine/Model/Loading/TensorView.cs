using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Model.Loading;

/// <summary>
/// A tensor as a model loader sees it, whatever the file format: its type, its shape outermost
/// first (rows then columns, as PyTorch and safetensors write it) and its bytes in native memory.
/// </summary>
public readonly unsafe struct TensorView(string name, GgmlType type, long[] shape, byte* data, long byteSize)
{
    public string Name { get; } = name;
    public GgmlType Type { get; } = type;
    public long[] Shape { get; } = shape;
    public byte* Data { get; } = data;
    public long ByteSize { get; } = byteSize;

    /// <summary>The file the bytes are mapped from and where in it they start (null when not file-backed).</summary>
    public string? FilePath { get; init; }

    public long FileOffset { get; init; }
}

/// <summary>Tensors by name from one model (one or several files).</summary>
public interface ITensorSource
{
    /// <summary>Where the tensors come from, for error messages.</summary>
    string Location { get; }

    bool TryGet(string name, out TensorView tensor);

    /// <summary>
    /// Whether tensor data is a read-only memory map of the files (pages can be handed back to the
    /// page cache once a packed copy exists); false for data in anonymous memory.
    /// </summary>
    bool IsFileMapped => false;
}
