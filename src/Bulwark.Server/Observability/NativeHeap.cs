using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace Bulwark.Server.Observability;

/// <summary>
/// glibc's malloc, which the .NET runtime, the JIT, OpenSSL and SQLite allocate from (the GC heap is not in it). glibc
/// gives threads that allocate at once arenas of their own, up to eight per core, each reserving 64 MiB and keeping
/// what it once held: under a long load new arenas appear and RSS outside the GC creeps up (docs/reliability.md,
/// "Memory over time"). <c>serve</c> caps the number at start-up with <c>mallopt(M_ARENA_MAX)</c>
/// (<c>Bulwark:Memory:MallocArenaMax</c>). glibc fixes its limit the first time it has to choose after eight arenas
/// exist, so the cap holds only when set before that (at start-up it is); arenas that already exist are kept.
/// Elsewhere (musl, macOS, Windows) every call here is a no-op answering null or false.
/// </summary>
public static partial class NativeHeap
{
    private const int MArenaMax = -8; // M_ARENA_MAX in glibc's malloc.h

    /// <summary>glibc's version ("2.36"), or null when the C library is not glibc.</summary>
    public static string? GlibcVersion { get; } = ReadGlibcVersion();

    /// <summary>Caps malloc's arenas at <paramref name="arenas"/> (at least 1). False where there is no glibc or glibc refused.</summary>
    public static bool LimitArenas(int arenas)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(arenas, 1);
        if (GlibcVersion is null) return false;
        return MallOpt(MArenaMax, arenas) == 1;
    }

    /// <summary>The environment variable glibc reads its arena cap from when a process starts.</summary>
    public const string ArenaMaxVariable = "MALLOC_ARENA_MAX";

    /// <summary>
    /// For <c>bulwark serve</c> only, before anything else starts: when <paramref name="maxArenas"/> is above 0 and
    /// <c>MALLOC_ARENA_MAX</c> is not set, runs this same command line again in this process (<c>execve</c> of
    /// <c>/proc/self/exe</c>: same pid, same open standard streams) with <c>MALLOC_ARENA_MAX</c> set, because by the
    /// time managed code runs the runtime's threads have made about seven arenas that a later cap keeps. Returns only
    /// when it does not do so (no glibc, cap 0, the variable already set, or <c>execve</c> failed): then
    /// <see cref="Apply"/> still stops new arenas.
    /// </summary>
    public static void RestartWithArenaLimit(int maxArenas)
    {
        if (maxArenas <= 0 || GlibcVersion is null || Environment.GetEnvironmentVariable(ArenaMaxVariable) is not null) return;
        string[] argv;
        try
        {
            argv = File.ReadAllText("/proc/self/cmdline").TrimEnd('\0').Split('\0');
        }
        catch (IOException)
        {
            return;
        }
        var environment = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .Select(e => $"{e.Key}={e.Value}").Append($"{ArenaMaxVariable}={maxArenas}").ToArray();
        _ = ExecVe("/proc/self/exe", [.. argv, null], [.. environment, null]); // returns only on failure
    }

    /// <summary>What <see cref="Apply"/> last did, as <c>serve</c> prints it on its <c>memory</c> line; null before.</summary>
    public static string? Applied { get; private set; }

    /// <summary>
    /// <c>Bulwark:Memory:MallocArenaMax</c> at start-up: caps the arenas at <paramref name="maxArenas"/> (0: glibc's
    /// default, left alone). Best-effort: without glibc, or if glibc refuses, it says so and the server runs on.
    /// </summary>
    /// <returns>The description also kept in <see cref="Applied"/>.</returns>
    public static string Apply(int maxArenas)
    {
        var existing = Read()?.Arenas;
        Applied = GlibcVersion is null ? "malloc arenas: not glibc, MallocArenaMax ignored"
            : maxArenas == 0 ? $"malloc arenas: glibc {GlibcVersion}'s default (8 per core), {existing} now"
            : LimitArenas(maxArenas) ? $"malloc arenas at most {maxArenas} (glibc {GlibcVersion}; {existing} existed, kept; {ArenaMaxVariable} {Environment.GetEnvironmentVariable(ArenaMaxVariable) ?? "unset"} at process start)"
            : $"malloc arenas: glibc {GlibcVersion} refused M_ARENA_MAX {maxArenas}, its default stays";
        return Applied;
    }

    /// <summary>
    /// The arenas malloc has now and the bytes they hold from the system (mmap'd blocks included), from
    /// <c>malloc_info</c>; null without glibc. It walks every arena under its lock: for a scrape, not a hot path.
    /// </summary>
    public static (int Arenas, long SystemBytes)? Read()
    {
        if (GlibcVersion is null) return null;
        // open_memstream keeps the two addresses and writes the text's location and length there at fclose,
        // so they live in native memory, not in a frame the marshaller pins only for the call.
        var slots = Marshal.AllocHGlobal(2 * IntPtr.Size);
        try
        {
            Marshal.WriteIntPtr(slots, 0);
            Marshal.WriteIntPtr(slots, IntPtr.Size, 0);
            var stream = OpenMemStream(slots, slots + IntPtr.Size);
            if (stream == 0) return null;
            var written = MallocInfo(0, stream) == 0;
            FClose(stream);
            var (buffer, size) = (Marshal.ReadIntPtr(slots), Marshal.ReadIntPtr(slots, IntPtr.Size));
            try
            {
                return written && buffer != 0 ? Parse(Marshal.PtrToStringUTF8(buffer, checked((int)size))) : null;
            }
            finally
            {
                if (buffer != 0) Free(buffer); // the text is ours to free after fclose
            }
        }
        finally
        {
            Marshal.FreeHGlobal(slots);
        }
    }

    /// <summary>Arenas (one <c>&lt;heap nr=…&gt;</c> each) and the total current system bytes from <c>malloc_info</c>'s XML.</summary>
    internal static (int Arenas, long SystemBytes) Parse(string xml)
    {
        var arenas = HeapElement().Count(xml);
        // The totals follow the last </heap>: <system type="current" size="N"/> there is over every arena.
        var tail = xml[(Math.Max(0, xml.LastIndexOf("</heap>", StringComparison.Ordinal)))..];
        var system = SystemCurrent().Match(tail);
        var mmap = TotalMmap().Match(tail);
        long Number(Match m) => m.Success ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        return (arenas, Number(system) + Number(mmap));
    }

    [GeneratedRegex("<heap nr=\"\\d+\">")]
    private static partial Regex HeapElement();

    [GeneratedRegex("<system type=\"current\" size=\"(\\d+)\"/>")]
    private static partial Regex SystemCurrent();

    [GeneratedRegex("<total type=\"mmap\" count=\"\\d+\" size=\"(\\d+)\"/>")]
    private static partial Regex TotalMmap();

    private static string? ReadGlibcVersion()
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            return Marshal.PtrToStringUTF8(GnuGetLibcVersion());
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return null; // musl and others have no gnu_get_libc_version
        }
    }

    [LibraryImport("libc", EntryPoint = "gnu_get_libc_version")]
    private static partial nint GnuGetLibcVersion();

    [LibraryImport("libc", EntryPoint = "execve", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int ExecVe(string path, string?[] argv, string?[] envp);

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int MallOpt(int parameter, int value);

    [LibraryImport("libc", EntryPoint = "open_memstream")]
    private static partial nint OpenMemStream(nint bufferSlot, nint sizeSlot);

    [LibraryImport("libc", EntryPoint = "malloc_info")]
    private static partial int MallocInfo(int options, nint stream);

    [LibraryImport("libc", EntryPoint = "fclose")]
    private static partial int FClose(nint stream);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(nint pointer);
}
