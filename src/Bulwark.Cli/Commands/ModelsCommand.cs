using System.CommandLine;

namespace Bulwark.Cli.Commands;

/// <summary><c>bulwark models ...</c>: making, importing, verifying and managing model files.</summary>
internal static class ModelsCommand
{
    public static Command Create()
    {
        var command = new Command("models", "Create, import, verify and manage models.");
        foreach (var sub in Subcommands())
            command.Subcommands.Add(sub);
        return command;
    }

    // One line per subcommand, each defined in its own file.
    private static IEnumerable<Command> Subcommands()
    {
        foreach (var c in ModelsRegistryCommands.All()) yield return c;
        foreach (var c in ModelsQualityCommands.All()) yield return c;
        foreach (var c in ModelsServerCommands.All()) yield return c;
        yield return SynthCommand.Create();
    }
}
