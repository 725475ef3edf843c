using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;

namespace Bulwark.Engine.Conversion;

/// <summary>
/// What a Gemma GGUF says beyond the Llama keys (the window and Gemma 2's caps), and what it cannot say:
/// llama.cpp fixes the query scale, the windowed layers (every other one; five of six) and Gemma 3's local
/// RoPE base (10 000), so a config.json that differs is refused rather than converted into another model.
/// </summary>
internal static class GemmaToGguf
{
    public static void Check(LlamaConfig config, string arch, string configPath)
    {
        var gemma = config.Gemma!;
        var implied = GgufGemma.AttentionScale(arch, config);
        if (gemma.AttentionScale != implied)
            throw new ModelFormatException(configPath, "query_pre_attn_scalar", $"gives a query scale of {gemma.AttentionScale}; a GGUF {arch} is scaled by llama.cpp's {implied}, so it cannot be converted");
        var pattern = arch == "gemma2" ? 2 : 6;
        if (Enumerable.Range(0, config.LayerCount).Any(l => config.WindowOf(l) != (l % pattern < pattern - 1 ? config.SlidingWindow : 0)))
            throw new ModelFormatException(configPath, "layer_types", $"windowed layers other than llama.cpp's {arch} pattern (one global layer in {pattern}) cannot be written as GGUF");
        if (arch == "gemma3" && gemma.LocalRopeTheta != 10000f)
            throw new ModelFormatException(configPath, "rope_local_base_freq", $"{gemma.LocalRopeTheta} cannot be written as GGUF: llama.cpp's gemma3 uses 10000");
        if (arch == "gemma2" && !config.TiedOutputHead)
            throw new ModelFormatException(configPath, "tie_word_embeddings", "false cannot be written as GGUF: llama.cpp's gemma2 always ties the output head");
    }

    public static void AddMetadata(GgufWriter writer, LlamaConfig config, string arch)
    {
        writer.Add($"{arch}.attention.sliding_window", (uint)config.SlidingWindow);
        if (arch != "gemma2") return;
        writer.Add($"{arch}.attn_logit_softcapping", config.Gemma!.AttentionLogitSoftCap)
            .Add($"{arch}.final_logit_softcapping", config.Gemma.FinalLogitSoftCap);
    }
}
