using System.IO.MemoryMappedFiles;

namespace Bulwark.Engine.Formats;

/// <summary>
/// A read-only memory map of a whole file. Weights stay in the page cache and are shared
/// between processes; nothing is copied onto the managed heap.
/// </summary>
public sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private byte* _pointer;

    private MappedFile(string path, long length, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* pointer)
    {
        Path = path;
        Length = length;
        _map = map;
        _view = view;
        _pointer = pointer;
    }

    public string Path { get; }

    public long Length { get; }

    /// <summary>Start of the mapping; valid until <see cref="Dispose"/>.</summary>
    public byte* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == null && Length > 0, this);
            return _pointer;
        }
    }

    public static MappedFile Open(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read);
        var length = stream.Length;
        // An empty file cannot be mapped; readers report it as truncated.
        if (length == 0) return new MappedFile(full, 0, null, null, null);
        var map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
        var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        return new MappedFile(full, length, map, view, p + view.PointerOffset);
    }

    public void Dispose()
    {
        if (_view is not null && _pointer != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _pointer = null;
        }
        _view?.Dispose();
        _map?.Dispose();
    }
}
