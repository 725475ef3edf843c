using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Model.Loading;

/// <summary>How <see cref="ModelLoader"/> turns stored weights into the weights that run.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>
    /// Quantize F32/F16/BF16 matrices to Q8_0 or Q4_0 while loading (<c>--quantize</c>), exactly as
    /// <c>bulwark models quantize</c> writes them; null keeps every matrix as stored. Matrices already
    /// quantized stay as they are (re-quantizing compounds the error), said once through <see cref="Notice"/>.
    /// </summary>
    public GgmlType? QuantizeTo { get; init; }

    /// <summary>Receives one line about what quantizing at load did; null to say nothing.</summary>
    public Action<string>? Notice { get; init; }

    public static ModelLoadOptions None { get; } = new();
}

/// <summary>The <c>--quantize</c> values (<c>q8_0</c>, <c>q4_0</c>; <c>none</c> or empty for none).</summary>
public static class LoadQuantization
{
    public const string Allowed = "q8_0 or q4_0 (or none)";

    /// <exception cref="ArgumentException">Any other value; the message names <paramref name="field"/> and the value.</exception>
    public static GgmlType? Parse(string? value, string field = "--quantize") =>
        TryParse(value, out var type) ? type : throw new ArgumentException($"{field} must be {Allowed}; got '{value}'");

    public static bool TryParse(string? value, out GgmlType? type)
    {
        (var known, type) = value?.Trim().ToLowerInvariant() switch
        {
            null or "" or "none" => (true, (GgmlType?)null),
            "q8_0" => (true, GgmlType.Q8_0),
            "q4_0" => (true, GgmlType.Q4_0),
            _ => (false, null),
        };
        return known;
    }
}
