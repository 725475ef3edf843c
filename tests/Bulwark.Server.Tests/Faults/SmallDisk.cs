using System.Diagnostics;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Faults;

/// <summary>
/// A small file system of one test's own (a tmpfs mounted on a temp folder), so the test can fill it
/// to the last byte and free it again without touching any disk others use. Mounting needs root
/// (CAP_SYS_ADMIN), as ./test.sh runs; without it the test fails saying so. Unmounted on dispose.
/// </summary>
internal sealed class SmallDisk : IDisposable
{
    private readonly string _filler;

    private SmallDisk(string path)
    {
        Path = path;
        _filler = System.IO.Path.Combine(path, "filler");
    }

    public string Path { get; }

    public static SmallDisk Mount(string size)
    {
        var path = Fixtures.NewTempDirectory("disk");
        var (code, output) = Run("mount", "-t", "tmpfs", "-o", $"size={size},mode=0755", "tmpfs", path);
        if (code != 0)
            throw new InvalidOperationException($"this test mounts a {size} tmpfs to fill it, which needs root (CAP_SYS_ADMIN); 'mount -t tmpfs' said: {output.Trim()}");
        return new SmallDisk(path);
    }

    /// <summary>Writes a file until the file system has not one byte left.</summary>
    public void Fill()
    {
        using var file = new FileStream(_filler, FileMode.Append, FileAccess.Write, FileShare.None, 1);
        var chunk = new byte[64 * 1024];
        try
        {
            while (true) file.Write(chunk);
        }
        catch (IOException)
        {
            // The last chunk did not fit whole: the rest goes a byte at a time, to the last one.
            try { while (true) file.Write(chunk, 0, 1); } catch (IOException) { }
        }
    }

    /// <summary>Gives the space back.</summary>
    public void Free() => File.Delete(_filler);

    public void Dispose()
    {
        Run("umount", "-l", Path);
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }

    private static (int Code, string Output) Run(string program, params string[] args)
    {
        try
        {
            var start = new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, output.Result + error);
        }
        catch (System.ComponentModel.Win32Exception e) { return (-1, e.Message); }
    }
}
