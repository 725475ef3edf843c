using System.CommandLine;
using Bulwark.Cli;

namespace Bulwark.Server.Tests.Cli;

/// <summary>Runs <c>bulwark</c> commands in-process with captured output, as the real binary would parse them.</summary>
internal static class CliHarness
{
    public sealed record Result(int ExitCode, string Output, string Error);

    public static async Task<Result> RunAsync(params string[] args)
    {
        var root = new RootCommand("bulwark (test)");
        foreach (var command in CommandCatalog.All()) root.Subcommands.Add(command);
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await root.Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
        return new Result(exit, output.ToString(), error.ToString());
    }
}
