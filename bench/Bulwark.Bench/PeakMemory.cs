namespace Bulwark.Bench;

/// <summary>Peak resident set size of this process (Linux VmHWM), in MiB; -1 elsewhere.</summary>
internal static class PeakMemory
{
    public static double MiB()
    {
        const string path = "/proc/self/status";
        if (!File.Exists(path)) return -1;
        foreach (var line in File.ReadLines(path))
            if (line.StartsWith("VmHWM:"))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
        return -1;
    }
}
