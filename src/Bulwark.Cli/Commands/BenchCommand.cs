using System.CommandLine;

namespace Bulwark.Cli.Commands;

/// <summary><c>bulwark bench ...</c>: load generators and in-process benchmarks.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var command = new Command("bench", "Measure the engine in-process or a running server over HTTP.");
        foreach (var sub in Subcommands())
            command.Subcommands.Add(sub);
        return command;
    }

    // One line per subcommand, each defined in its own file.
    private static IEnumerable<Command> Subcommands()
    {
        yield return BenchEngineCommand.Create();
        yield return BenchSecurityCommand.Create();
        yield return BenchServeCommand.Create();
    }
}
