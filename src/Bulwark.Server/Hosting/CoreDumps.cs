using System.Runtime.InteropServices;

namespace Bulwark.Server.Hosting;

/// <summary>
/// A crash must not write prompts, completions and keys to disk: <c>bulwark serve</c> sets its core-file
/// size limit to 0 (RLIMIT_CORE) at start-up, unless <c>Bulwark:Server:CoreDumps</c> is true (for debugging;
/// docs/security.md). The .NET runtime's own dumps (<c>DOTNET_DbgEnableMiniDump</c>) are off unless set.
/// </summary>
internal static partial class CoreDumps
{
    private const int RlimitCore = 4; // RLIMIT_CORE on Linux

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    /// <summary>Sets the soft and hard core-file limits to 0 (a process cannot raise them again). False where there is no such limit.</summary>
    /// <exception cref="IOException">The limit could not be set.</exception>
    public static bool Disable()
    {
        if (!OperatingSystem.IsLinux()) return false;
        var none = new RLimit { Current = 0, Maximum = 0 };
        if (SetRLimit(RlimitCore, ref none) != 0)
            throw new IOException($"setrlimit(RLIMIT_CORE, 0) failed: {Marshal.GetLastPInvokeErrorMessage()}");
        return true;
    }

    /// <summary>The soft and hard core-file limits in bytes (ulong.MaxValue: unlimited); null where there is no such limit.</summary>
    public static (ulong Soft, ulong Hard)? Limits()
    {
        if (!OperatingSystem.IsLinux()) return null;
        var limit = new RLimit();
        return GetRLimit(RlimitCore, ref limit) == 0 ? (limit.Current, limit.Maximum) : null;
    }

    [LibraryImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static partial int SetRLimit(int resource, ref RLimit limit);

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static partial int GetRLimit(int resource, ref RLimit limit);
}
