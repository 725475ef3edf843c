using System.Runtime.InteropServices;

namespace Bulwark.Engine.Memory;

/// <summary>
/// Hands the resident pages of a read-only file mapping back to the page cache (Linux
/// <c>madvise(MADV_DONTNEED)</c>): the mapping stays valid and a later read faults the page in again.
/// Only for file-backed mappings — on anonymous memory the same call would zero it.
/// </summary>
internal static unsafe partial class MappedPages
{
    private const int MadviseDontNeed = 4;

    /// <summary>Releases every whole page inside [start, start + length); a no-op off Linux.</summary>
    public static void Release(byte* start, long length)
    {
        if (!OperatingSystem.IsLinux() || length <= 0) return;
        var page = Environment.SystemPageSize;
        var first = ((long)start + page - 1) / page * page;
        var end = ((long)start + length) / page * page;
        if (end <= first) return;
        // Best effort: a failure only means the pages stay resident.
        _ = Madvise((void*)first, (nuint)(end - first), MadviseDontNeed);
    }

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(void* address, nuint length, int advice);
}
