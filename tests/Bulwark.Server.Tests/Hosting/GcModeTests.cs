using Bulwark.Server.Tests.Replicas;
using Bulwark.Server.Tests.Security;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>
/// <c>bulwark serve</c> runs the GC its runtimeconfig sets (workstation, non-concurrent, conserve memory 5, LOH from 1 MiB,
/// chosen for a flat RSS: docs/reliability.md), the operator's <c>DOTNET_*</c> variables override it, and
/// its start-up report says which mode the GC is in, as the GC reports it. Real serve processes.
/// </summary>
public sealed class GcModeTests
{
    [Theory]
    [InlineData("", "", "GC workstation, non-concurrent, conserve memory 5, large objects from 1024 KiB")]
    [InlineData("DOTNET_GCLOHThreshold", "0x14C08", "conserve memory 5, large objects from 83 KiB")]
    [InlineData("DOTNET_gcConcurrent", "1", "GC workstation, concurrent, conserve memory 5")]
    [InlineData("DOTNET_GCConserveMemory", "0", "GC workstation, non-concurrent, conserve memory 0")]
    [InlineData("DOTNET_gcServer", "1", "GC server (")]
    public async Task ServeReportsTheGcModeAndTheOperatorsVariablesOverrideIt(string variable, string value, string expected)
    {
        var environment = new Dictionary<string, string>();
        if (variable.Length > 0) environment[variable] = value;
        var dir = Fixtures.NewTempDirectory("gcmode");
        try
        {
            await using var serve = await TestServe.StartAsync(environment, dir);
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(30), () => Task.FromResult(serve.Output.Contains("  memory     "))), serve.Output);
            var line = serve.Output.Split('\n').Single(l => l.StartsWith("  memory     ", StringComparison.Ordinal));
            Assert.Contains(expected, line);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
