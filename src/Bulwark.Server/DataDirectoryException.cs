namespace Bulwark.Server;

/// <summary>
/// The data directory cannot be written (its disk is full, it is read-only, it is gone): start-up
/// stops with this. The message names the path that failed, the cause and the space left on its
/// file system, so an operator knows what to free and where (docs/reliability.md).
/// </summary>
public sealed class DataDirectoryException(string path, Exception cause) : Exception(Describe(path, cause), cause)
{
    /// <summary>The file or folder that could not be written.</summary>
    public string Path { get; } = path;

    /// <summary>Whether <paramref name="e"/> is a failure to write the disk (rather than a bug) worth naming as such.</summary>
    public static bool IsDiskFailure(Exception e) => e switch
    {
        DataDirectoryException => false,
        IOException or UnauthorizedAccessException => true,
        // SQLITE_PERM, _READONLY, _IOERR, _FULL, _CANTOPEN: the file, not the SQL.
        Microsoft.Data.Sqlite.SqliteException s => s.SqliteErrorCode is 3 or 8 or 10 or 13 or 14,
        _ => false,
    };

    private static string Describe(string path, Exception cause)
    {
        var free = "";
        try
        {
            var existing = path;
            while (!Directory.Exists(existing) && System.IO.Path.GetDirectoryName(existing) is { } parent) existing = parent;
            free = $" ({new DriveInfo(existing).AvailableFreeSpace} bytes free on its file system)";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException) { }
        return $"Bulwark cannot write its data directory: {path}: {cause.Message}{free}";
    }
}
