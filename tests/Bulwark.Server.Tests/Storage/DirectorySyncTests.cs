using Bulwark.Server.Storage;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Storage;

/// <summary>The directory fsync behind the audit spool's crash safety: it reaches the OS, and says so when it cannot.</summary>
public sealed class DirectorySyncTests
{
    [Fact]
    public void ADirectoryIsSynced()
    {
        var directory = Fixtures.NewTempDirectory("dirsync");
        File.WriteAllText(Path.Combine(directory, "new-file"), "x");
        DirectorySync.Flush(directory);
    }

    [Fact]
    public void AFileOrAMissingPathIsAnIOExceptionNamingIt()
    {
        var directory = Fixtures.NewTempDirectory("dirsync");
        var file = Path.Combine(directory, "plain-file");
        File.WriteAllText(file, "x");
        var notADirectory = Assert.Throws<IOException>(() => DirectorySync.Flush(file));
        Assert.Contains($"open of the directory {file} failed", notADirectory.Message, StringComparison.Ordinal);
        var missing = Assert.Throws<IOException>(() => DirectorySync.Flush(Path.Combine(directory, "gone")));
        Assert.Contains("gone failed", missing.Message, StringComparison.Ordinal);
    }
}
