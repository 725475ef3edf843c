using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Model.Config;

/// <summary>
/// Per-pair RoPE frequency divisors read from a file (GGUF's <c>rope_freqs.weight</c>, <c>rope_factors_long/short.weight</c>,
/// config.json's <c>long_factor</c>/<c>short_factor</c>): each must be a finite number above 0, or the frequencies
/// they divide become infinite or NaN and every logit after them is garbage.
/// </summary>
internal static class RopeFactorValues
{
    public static void Check(ReadOnlySpan<float> factors, string file, string field)
    {
        for (var i = 0; i < factors.Length; i++)
            if (!(float.IsFinite(factors[i]) && factors[i] > 0))
                throw new ModelFormatException(file, field, $"factor {i} must be a finite number above 0; got {factors[i]}");
    }
}
