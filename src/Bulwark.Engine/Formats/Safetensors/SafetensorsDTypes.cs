namespace Bulwark.Engine.Formats.Safetensors;

/// <summary>The dtypes safetensors defines, and which of them the engine's kernels can use.</summary>
public static class SafetensorsDTypes
{
    /// <summary>Every dtype name the safetensors specification lists, so a refusal can say "unsupported" rather than "unknown".</summary>
    private static readonly HashSet<string> Defined = new(StringComparer.Ordinal)
    {
        "BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "F16", "BF16", "F32", "F64", "C64",
        "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",
    };

    /// <summary>I32 holds AWQ/GPTQ's packed 4-bit weights, zero points and group indices (never a float weight: the loader checks which tensor takes which).</summary>
    public const string Supported = "F32, F16, BF16, I32";

    /// <summary>The ggml element type of a supported dtype, or null.</summary>
    public static GgmlType? ToGgml(string dtype) => dtype switch
    {
        "F32" => GgmlType.F32,
        "F16" => GgmlType.F16,
        "BF16" => GgmlType.BF16,
        "I32" => GgmlType.I32,
        _ => null,
    };

    public static bool IsDefined(string dtype) => Defined.Contains(dtype);
}
