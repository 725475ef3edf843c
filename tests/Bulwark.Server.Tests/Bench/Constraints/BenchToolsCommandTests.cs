namespace Bulwark.Server.Tests.Bench.Constraints;

public sealed class BenchToolsCommandTests
{
    [Fact]
    public async Task ReportsCompileTimesAndParserThroughput()
    {
        var result = await BenchHarness.RunAsync("tools", "--megabytes", "1", "--chunk", "3");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("required grammar, 128 functions:", result.Output);
        Assert.Matches(@"Hermes parser: 1\.0 M characters in 3-character pushes, \d{4,} calls", result.Output);
        Assert.Matches(@"Hermes streaming reader \(enforced calls\): 1\.0 M characters in 3-character pushes, \d{4,} calls, \d{5,} argument fragments", result.Output);
    }
}
