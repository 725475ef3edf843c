using System.CommandLine;
using Bulwark.Cli;

namespace Bulwark.Engine.Tests.Cli;

/// <summary>Runs a <c>bulwark</c> command line in-process, capturing standard output and error.</summary>
internal static class CliRunner
{
    public sealed record Result(int ExitCode, string Output, string Error);

    public static Result Run(params string[] args)
    {
        var root = new RootCommand("bulwark (test)");
        foreach (var command in CommandCatalog.All()) root.Subcommands.Add(command);
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = root.Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
        return new Result(exit, output.ToString(), error.ToString());
    }
}
