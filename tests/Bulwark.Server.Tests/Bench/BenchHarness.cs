using System.CommandLine;

namespace Bulwark.Server.Tests.Bench;

/// <summary>
/// Runs the benchmarks of <c>bench/run</c> that parse with System.CommandLine (engine, security,
/// serve, redactor) in-process with captured output, as the bench program would parse them.
/// </summary>
internal static class BenchHarness
{
    public sealed record Result(int ExitCode, string Output, string Error);

    public static async Task<Result> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await Bulwark.Bench.CommandCatalog.Root().Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
        return new Result(exit, output.ToString(), error.ToString());
    }
}
