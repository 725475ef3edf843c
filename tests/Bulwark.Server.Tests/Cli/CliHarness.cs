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

    // BULWARK_ADMIN_KEY is process-wide: commands that need it run one at a time.
    private static readonly SemaphoreSlim AdminKeyGate = new(1, 1);

    /// <summary>Runs a command with <c>BULWARK_ADMIN_KEY</c> set to <paramref name="adminKey"/> (unset when null), as an operator's shell would.</summary>
    public static async Task<Result> RunWithAdminKeyAsync(string? adminKey, params string[] args)
    {
        await AdminKeyGate.WaitAsync();
        try
        {
            Environment.SetEnvironmentVariable(Bulwark.Cli.Commands.AdminApi.KeyVariable, adminKey);
            return await RunAsync(args);
        }
        finally
        {
            Environment.SetEnvironmentVariable(Bulwark.Cli.Commands.AdminApi.KeyVariable, null);
            AdminKeyGate.Release();
        }
    }
}
