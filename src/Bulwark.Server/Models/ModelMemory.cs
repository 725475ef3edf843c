namespace Bulwark.Server.Models;

/// <summary>What a model's weights weigh, as the memory budget counts them: their size on disk (they are mapped, not copied).</summary>
public static class ModelMemory
{
    /// <summary>A file's size, or the total size of a folder's files (0 when neither exists).</summary>
    public static long OnDisk(string path) =>
        File.Exists(path) ? new FileInfo(path).Length
        : Directory.Exists(path) ? new DirectoryInfo(path).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length)
        : 0;
}
