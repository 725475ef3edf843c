using System.CommandLine;

namespace Bulwark.Cli.Commands;

/// <summary>Options several commands share, defined once so their names and help agree.</summary>
internal static class CommonOptions
{
    public static Option<string?> DataDir() => new("--data-dir")
    {
        Description = "Data directory holding models, the key store and state (default: $BULWARK_DATA_DIR, else ~/.local/share/bulwark).",
    };
}
