using System.CommandLine;
using Bulwark.Bench.Constraints;
using Bulwark.Bench.Embeddings;
using Bulwark.Bench.Guardrails;
using Bulwark.Bench.Http;
using Bulwark.Bench.Security;
using Bulwark.Bench.Serving;
using Bulwark.Bench.Soak;

namespace Bulwark.Bench;

/// <summary>
/// The benchmarks of the serving stack (the engine in-process, the security front, a server over
/// HTTP, the output guard's redactor, a long soak of one server process), parsed by System.CommandLine: they have many options with
/// defaults and help text, and tests run them in-process with captured output.
/// </summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> All()
    {
        yield return BenchEngineCommand.Create();
        yield return BenchSecurityCommand.Create();
        yield return BenchServeCommand.Create();
        yield return BenchRedactorCommand.Create();
        yield return BenchGuardModelCommand.Create();
        yield return BenchSoakCommand.Create();
        yield return BenchGrammarCommand.Create();
        yield return BenchEmbedCommand.Create();
        yield return BenchSpeculativeCommand.Create();
        yield return BenchToolsCommand.Create();
    }

    /// <summary>A root over <see cref="All"/>, so <c>serve --help</c> and the commands' own parsing work as they did under <c>bulwark bench</c>.</summary>
    public static RootCommand Root()
    {
        var root = new RootCommand("Bulwark benchmarks of the serving stack.");
        foreach (var command in All())
            root.Subcommands.Add(command);
        return root;
    }
}
