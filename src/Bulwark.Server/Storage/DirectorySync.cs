using System.Runtime.InteropServices;

namespace Bulwark.Server.Storage;

/// <summary>
/// Makes a directory's entries durable (fsync of the directory itself, as POSIX asks after creating
/// a file): without it a file created and fsynced just before a power loss can be missing afterwards,
/// though its contents were flushed. A no-op where the OS offers no directory handle to sync (Windows,
/// whose NTFS journals directory entries).
/// </summary>
internal static partial class DirectorySync
{
    private const int ReadOnly = 0, Directory = 0x10000; // O_RDONLY, O_DIRECTORY (Linux)

    /// <exception cref="IOException">The directory could not be opened or synced (with the OS's error).</exception>
    public static void Flush(string directory)
    {
        if (!OperatingSystem.IsLinux()) return;
        var fd = Open(directory, ReadOnly | Directory);
        if (fd < 0) throw Failure("open", directory);
        try
        {
            if (Fsync(fd) != 0) throw Failure("fsync", directory);
        }
        finally
        {
            _ = Close(fd);
        }
    }

    private static IOException Failure(string call, string directory) =>
        new($"{call} of the directory {directory} failed: {Marshal.GetLastPInvokeErrorMessage()}", Marshal.GetLastPInvokeError());

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
