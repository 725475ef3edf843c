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

/// <summary><c>--quantize q8_0|q4_0</c> on <c>serve</c> and <c>generate</c> (<c>bench/run engine</c> takes the same flag).</summary>
internal static class QuantizeOption
{
    public static Option<string?> Create() => new("--quantize")
    {
        Description = "Quantize the model's F32/F16/BF16 matrices to q8_0 or q4_0 while loading (as `models quantize` would); already-quantized weights stay as they are.",
    };
}
