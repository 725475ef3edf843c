using System.CommandLine;

namespace Bulwark.Cli.Commands;

/// <summary>An expected failure of a command: printed as one "error:" line, exit code 1.</summary>
internal sealed class CliException(string message) : Exception(message);

/// <summary>
/// Runs the body of a key or admin command with the invocation's output writer (so tests can run
/// commands in-process) and turns expected failures into one line on its error writer and exit 1.
/// </summary>
internal static class CliRun
{
    public static async Task<int> RunAsync(ParseResult result, Func<TextWriter, Task<int>> body)
    {
        var error = result.InvocationConfiguration.Error;
        try
        {
            return await body(result.InvocationConfiguration.Output);
        }
        catch (Exception e) when (e is CliException or ArgumentException or FormatException or InvalidOperationException or HttpRequestException)
        {
            await error.WriteLineAsync("error: " + Bulwark.Server.Redaction.SecretRedactor.Redact(e.Message));
            return 1;
        }
    }
}
