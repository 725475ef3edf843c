using System.CommandLine;
using Bulwark.Cli;

namespace Bulwark.Engine.Tests.Cli;

/// <summary>Runs <c>bulwark</c> in-process with the real command catalog, capturing stdout and stderr.</summary>
internal static class CliRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string Output => Stdout;
        public string Error => Stderr;
    }

    public static Result Run(params string[] args)
    {
        var root = new RootCommand("bulwark (test)");
        foreach (var command in CommandCatalog.All()) root.Subcommands.Add(command);
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        var exit = root.Parse(args).Invoke(new InvocationConfiguration { Output = stdout, Error = stderr });
        return new Result(exit, stdout.ToString(), stderr.ToString());
    }
}
