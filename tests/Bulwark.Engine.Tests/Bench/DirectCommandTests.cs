using Bulwark.Bench;
using Xunit;

namespace Bulwark.Engine.Tests.Bench;

public class DirectCommandTests
{
    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    public void HelpPrintsTheUsageAndSucceedsWithoutRunning(string flag)
    {
        var ran = false;
        var output = new StringWriter();
        var error = new StringWriter();
        var code = DirectCommand.Run("kernels", _ => { ran = true; return 0; }, ["--threads", "1", flag], "usage: bench/run", output, error);
        Assert.Equal(0, code);
        Assert.False(ran);
        Assert.Contains("usage: bench/run", output.ToString());
        Assert.Equal("", error.ToString());
    }

    [Theory]
    [InlineData("--threads")]
    [InlineData("--threads", "0")]
    [InlineData("--threads", "257")]
    [InlineData("--threads", "two")]
    [InlineData("stray")]
    public void ABadOptionEndsWithItsMessageAndExitCodeTwo(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = DirectCommand.Run("kernels", a => new BenchArgs(a).Int("threads", 2, 1, 256), args, "usage", output, error);
        Assert.Equal(2, code);
        Assert.StartsWith("bench kernels: ", error.ToString());
        Assert.Contains(args[0].TrimStart('-'), error.ToString());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(256)]
    public void AValidOptionRunsTheCommand(int threads)
    {
        var code = DirectCommand.Run("kernels", a => new BenchArgs(a).Int("threads", 2, 1, 256), ["--threads", threads.ToString()], "usage", TextWriter.Null, TextWriter.Null);
        Assert.Equal(threads, code);
    }
}
