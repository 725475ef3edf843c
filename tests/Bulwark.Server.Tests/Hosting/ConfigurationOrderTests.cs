using Bulwark.Server.Hosting;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>Settings come from appsettings, then <c>Bulwark__*</c> environment variables, then flags: later sources win.</summary>
public sealed class ConfigurationOrderTests
{
    // KeepAliveTimeout is chosen because no other test depends on its exact value: the variable is
    // process-wide while this test runs, and other tests' builders may read it meanwhile.
    private const string Variable = "Bulwark__Server__KeepAliveTimeout";

    [Fact]
    public void EnvironmentBeatsTheDefaultAndAFlagBeatsTheEnvironment()
    {
        var before = Environment.GetEnvironmentVariable(Variable);
        Environment.SetEnvironmentVariable(Variable, "00:01:59");
        try
        {
            var fromEnvironment = ServerSettings.Read(BulwarkServer.CreateBuilder([]).Configuration);
            Assert.Equal(TimeSpan.FromSeconds(119), fromEnvironment.Server.KeepAliveTimeout);

            var fromFlag = ServerSettings.Read(BulwarkServer.CreateBuilder([], [new("Bulwark:Server:KeepAliveTimeout", "00:01:58")]).Configuration);
            Assert.Equal(TimeSpan.FromSeconds(118), fromFlag.Server.KeepAliveTimeout);
        }
        finally
        {
            Environment.SetEnvironmentVariable(Variable, before);
        }
        Assert.Equal(new ServerOptions().KeepAliveTimeout, ServerSettings.Read(BulwarkServer.CreateBuilder([]).Configuration).Server.KeepAliveTimeout);
    }
}
