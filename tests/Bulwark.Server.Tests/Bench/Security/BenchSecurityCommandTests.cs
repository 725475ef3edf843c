using System.Text.Json;

namespace Bulwark.Server.Tests.Bench.Security;

public class BenchSecurityCommandTests
{
    [Fact]
    public async Task EverySecuredBenchmarkRequestIsAuthenticatedAdmittedAndAudited()
    {
        // Timing goals live in the benchmark itself; this checks the secured path really ran in full.
        var result = await BenchHarness.RunAsync("security", "--iterations", "200", "--warmup", "50", "--json");
        Assert.True(result.ExitCode == 0, result.Error);
        using var json = JsonDocument.Parse(result.Output);
        var root = json.RootElement;
        Assert.Equal(200, root.GetProperty("iterations").GetInt32());
        Assert.Equal(250, root.GetProperty("audited").GetInt64());
        Assert.True(root.GetProperty("on_p50_us").GetDouble() > 0);
        Assert.True(root.GetProperty("off_p50_us").GetDouble() > 0);
        Assert.True(root.GetProperty("on_p99_us").GetDouble() >= root.GetProperty("on_p50_us").GetDouble());
    }

    [Theory]
    [InlineData("--iterations", "99", "--iterations must be between 100 and 10000000; got 99")]
    [InlineData("--warmup", "-1", "--warmup must be between 0 and 10000000; got -1")]
    public async Task OutOfRangeSettingsAreRefused(string flag, string value, string message)
    {
        var result = await BenchHarness.RunAsync("security", flag, value);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(message, result.Error);
    }

    [Fact]
    public async Task TheSmallestRunIsAccepted()
    {
        var result = await BenchHarness.RunAsync("security", "--iterations", "100", "--warmup", "0");
        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Contains("audit records written for the key: 100", result.Output);
    }
}
