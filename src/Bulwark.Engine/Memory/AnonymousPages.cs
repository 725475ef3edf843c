using System.Runtime.InteropServices;

namespace Bulwark.Engine.Memory;

/// <summary>
/// Large zeroed buffers straight from the kernel (Linux <c>mmap(MAP_ANONYMOUS)</c>), given back whole
/// with <c>munmap</c>. Against <c>malloc</c> + clear: a page counts toward the resident set only once it
/// is written (a batch buffer sized for 512 tokens costs what the steps that ran actually used), and a
/// freed buffer leaves the process at once instead of staying in the allocator's heap, where glibc keeps
/// chunks that outgrew its adaptive mmap threshold.
/// </summary>
internal static unsafe partial class AnonymousPages
{
    /// <summary>Smaller buffers come from the allocator: a page per buffer would waste more than it saves.</summary>
    public const long MinimumBytes = 256 * 1024;

    private const int ProtRead = 1, ProtWrite = 2, MapPrivate = 2, MapAnonymous = 0x20;

    /// <summary>Whether a buffer of <paramref name="bytes"/> comes from the kernel on this system (else from the allocator).</summary>
    public static bool Serves(long bytes) => OperatingSystem.IsLinux() && bytes >= MinimumBytes;

    /// <summary>
    /// <paramref name="bytes"/> of zeroed memory, aligned to at least 64 bytes: mapped pages when
    /// <see cref="Serves"/>, else the allocator's (cleared). Give it back with <see cref="Free"/> and the same size.
    /// </summary>
    public static void* Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        if (!Serves(bytes))
        {
            var memory = NativeMemory.AlignedAlloc((nuint)bytes, 64);
            NativeMemory.Clear(memory, (nuint)bytes);
            return memory;
        }
        var address = Mmap(null, (nuint)bytes, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        if (address == (void*)-1)
            throw new OutOfMemoryException($"mmap of {bytes} bytes failed (errno {Marshal.GetLastPInvokeError()})");
        return address;
    }

    public static void Free(void* address, long bytes)
    {
        if (address == null) return;
        if (!Serves(bytes))
        {
            NativeMemory.AlignedFree(address);
            return;
        }
        if (Munmap(address, (nuint)bytes) != 0)
            throw new InvalidOperationException($"munmap of {bytes} bytes failed (errno {Marshal.GetLastPInvokeError()})");
    }

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial void* Mmap(void* address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(void* address, nuint length);
}
