using Bulwark.Testing;

namespace Bulwark.Engine.Tests;

public class FixturesTests
{
    [FixtureFact]
    public void SharedFixturesAreFoundBesideTheRepository()
    {
        Assert.True(File.Exists(Fixtures.PathOf("README.md")));
    }
}
