using System.CommandLine;
using System.Text.Json;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Templates.Jinja;
using Bulwark.Engine.Templates;

namespace Bulwark.Cli.Commands;

/// <summary>
/// The errors an operator can cause with a file or a flag (a missing file, bad JSON, a model
/// that cannot be read, a template that raises): one line on stderr and exit code 1, never a
/// stack trace. Anything else is a bug and is left to surface.
/// </summary>
internal static class CommandFailure
{
    public const int ExitCode = 1;

    public static int Run(ParseResult result, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is TemplateException or ModelFormatException or FileNotFoundException or DirectoryNotFoundException
            or JsonException or ArgumentException or InvalidDataException or UnauthorizedAccessException)
        {
            result.InvocationConfiguration.Error.WriteLine("error: " + e.Message);
            return ExitCode;
        }
    }

    /// <summary>A usage error found after parsing (such as two options that exclude each other).</summary>
    public static int Usage(ParseResult result, string message)
    {
        result.InvocationConfiguration.Error.WriteLine("error: " + message);
        return ExitCode;
    }
}
