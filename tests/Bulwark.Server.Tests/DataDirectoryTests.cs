using Bulwark.Server;
using Bulwark.Testing;

namespace Bulwark.Server.Tests;

public class DataDirectoryTests
{
    [Fact]
    public void ExplicitPathWinsOverEnvironmentAndDefault()
    {
        var dir = Fixtures.NewTempDirectory();
        var resolved = DataDirectory.Resolve(dir);
        Assert.Equal(Path.GetFullPath(dir), resolved.Root);
    }

    [Fact]
    public void EnsureCreatedMakesModelsAndStateFolders()
    {
        var dir = Path.Combine(Fixtures.NewTempDirectory(), "data");
        var resolved = DataDirectory.Resolve(dir).EnsureCreated();
        Assert.True(Directory.Exists(resolved.ModelsPath));
        Assert.True(Directory.Exists(resolved.StatePath));
    }
}
