using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Model.Config;

namespace Bulwark.Engine.Model.Loading;

/// <summary>
/// Gemma 2 and Gemma 3 from a GGUF file, with llama.cpp's defaults and rules (<c>llama_model::load_hparams</c>):
/// a window on every other layer (Gemma 2, 4096 when the key is absent) or on five of six (Gemma 3, only when
/// <c>{arch}.attention.sliding_window</c> is present, its local layers on RoPE base 10 000 unscaled); queries
/// scaled by head_dim^−½, or (n_embd / n_head)^−½ for the 27B shapes (46 and 62 layers); Gemma 2's soft caps
/// (<c>attn_logit_softcapping</c> 50 and <c>final_logit_softcapping</c> 30 when absent). Gemma 3 with a window
/// has no soft-capping in llama.cpp, whatever the file says, and neither here. The norm weights are already 1 + w.
/// </summary>
internal static class GgufGemma
{
    public static LlamaConfig Read(GgufFile file, string arch, LlamaConfig config)
    {
        var gemma2 = arch == "gemma2";
        var windowKey = $"{arch}.attention.sliding_window";
        var window = file.GetIntegerOrNull(windowKey);
        if (window is { } w && (w < 0 || w > 1 << 24))
            throw new ModelFormatException(file.Path, windowKey, $"must be between 0 and {1 << 24}; got {w}");
        var slidingWindow = (int)(window ?? (gemma2 ? 4096 : 0));
        var attentionScale = AttentionScale(arch, config);
        return config with
        {
            SlidingWindow = slidingWindow,
            SlidingWindowPattern = gemma2 ? 2 : 6,
            // llama.cpp's Gemma 2 always multiplies by token_embd (a file with output.weight does not load there); Gemma 3 uses output.weight when present.
            TiedOutputHead = gemma2 || config.TiedOutputHead,
            Gemma = new GemmaConfig
            {
                EmbeddingScale = MathF.Sqrt(config.EmbeddingLength),
                AttentionScale = attentionScale,
                AttentionLogitSoftCap = gemma2 ? Cap(file, $"{arch}.attn_logit_softcapping", 50f) : 0,
                FinalLogitSoftCap = gemma2 ? Cap(file, $"{arch}.final_logit_softcapping", 30f) : 0,
                LocalRopeTheta = !gemma2 && slidingWindow > 0 ? 10000f : 0,
            },
        };
    }

    /// <summary>llama.cpp's query scale for a Gemma GGUF: head_dim^−½, or (n_embd / n_head)^−½ (integer division) for the 27B layer counts.</summary>
    public static float AttentionScale(string arch, LlamaConfig config)
    {
        var largest = arch == "gemma2" ? config.LayerCount == 46 : config.LayerCount == 62;
        return largest ? 1f / MathF.Sqrt(config.EmbeddingLength / config.HeadCount) : 1f / MathF.Sqrt(config.HeadDim);
    }

    private static float Cap(GgufFile file, string key, float fallback)
    {
        var value = file.GetFloatOrNull(key) ?? fallback;
        if (!(value > 0 && value <= 1e9))
            throw new ModelFormatException(file.Path, key, $"must be above 0 and at most 1e9; got {value}");
        return (float)value;
    }
}
