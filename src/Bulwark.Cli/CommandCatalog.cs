using System.CommandLine;
using Bulwark.Cli.Commands;

namespace Bulwark.Cli;

/// <summary>Every top-level command of <c>bulwark</c>, in the order <c>--help</c> lists them.</summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> All()
    {
        yield return GenerateCommand.Create();
        yield return InfoCommand.Create();
        yield return ServeCommand.Create();
        yield return ModelsCommand.Create();
        yield return TokenizeCommand.Create();
        yield return TemplateCommand.Create();
        yield return GuardCommand.Create();
        yield return KeysCommand.Create();
        yield return AdminCommand.Create();
    }
}
