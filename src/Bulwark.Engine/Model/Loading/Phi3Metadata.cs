using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Model.Config;

namespace Bulwark.Engine.Model.Loading;

/// <summary>
/// What a <c>phi3</c> GGUF adds, as llama.cpp's converter writes it: LongRoPE as the <c>rope_factors_short.weight</c>
/// and <c>rope_factors_long.weight</c> tensors (F32, one divisor per rotated pair) with <c>phi3.rope.scaling.attn_factor</c>
/// and <c>phi3.rope.scaling.original_context_length</c>; Phi-3-mini-4k's <c>phi3.attention.sliding_window</c>.
/// </summary>
internal static class Phi3Metadata
{
    /// <summary>
    /// The context length, capped at the sliding window when one is set below it: llama.cpp ignores Phi-3's window
    /// (full attention), transformers applies it, and the two agree only on sequences no longer than the window, so
    /// Bulwark serves those (as it does Mistral's window from config.json).
    /// </summary>
    public static int ContextLength(GgufFile file, string arch, int contextLength)
    {
        if (arch != "phi3") return contextLength;
        var key = $"{arch}.attention.sliding_window";
        var window = file.GetIntegerOrNull(key);
        if (window is null or 0) return contextLength;
        if (window < 0 || window > int.MaxValue)
            throw new ModelFormatException(file.Path, key, $"must be between 0 and {int.MaxValue}; got {window}");
        return (int)Math.Min(contextLength, window.Value);
    }

    public static RopeScaling RopeScaling(GgufFile file, string arch, int headDim, int contextLength)
    {
        var hasShort = file.TryGetTensor("rope_factors_short.weight", out var shortInfo);
        var hasLong = file.TryGetTensor("rope_factors_long.weight", out var longInfo);
        if (!hasShort && !hasLong)
        {
            var type = file.GetStringOrNull($"{arch}.rope.scaling.type");
            if (type is null or "none") return Config.RopeScaling.None;
            throw new ModelFormatException(file.Path, $"{arch}.rope.scaling.type", $"\"{ShownText.Of(type, 80)}\" is not supported for phi3 (LongRoPE comes as the rope_factors_short/long tensors)");
        }
        if (!hasShort || !hasLong)
            throw new ModelFormatException(file.Path, hasShort ? "rope_factors_long.weight" : "rope_factors_short.weight", "tensor is missing (LongRoPE needs both the short and the long factors)");
        var originalKey = $"{arch}.rope.scaling.original_context_length";
        var original = file.GetIntegerOrNull(originalKey) ?? contextLength;
        if (original < 1 || original > 1 << 24)
            throw new ModelFormatException(file.Path, originalKey, $"must be between 1 and {1 << 24}; got {original}");
        var attentionKey = $"{arch}.rope.scaling.attn_factor";
        var attention = file.GetFloatOrNull(attentionKey) ?? 1.0;
        if (!(attention > 0 && attention <= 100))
            throw new ModelFormatException(file.Path, attentionKey, $"must be above 0 and at most 100; got {attention}");
        return new RopeScaling(RopeScalingKind.LongRope, OriginalContextLength: (int)original)
        {
            ShortFactors = Factors(file, shortInfo, headDim),
            LongFactors = Factors(file, longInfo, headDim),
            AttentionFactor = (float)attention,
        };
    }

    private static RopeFactors Factors(GgufFile file, GgufTensorInfo info, int headDim)
    {
        if (info.Type != GgmlType.F32 || info.Dimensions.Length != 1 || info.Dimensions[0] != headDim / 2)
            throw new ModelFormatException(file.Path, info.Name, $"must be F32 [{headDim / 2}]; got {info.Type} [{string.Join(", ", info.Dimensions)}]");
        var values = new float[headDim / 2];
        Dequantize.F32(file.TensorBytes(info), values);
        RopeFactorValues.Check(values, file.Path, info.Name);
        return new RopeFactors(values);
    }
}
