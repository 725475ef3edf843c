using System.Text.Json;

namespace Bulwark.Engine.Model.Config;

/// <summary>
/// Gemma 2 (<c>gemma2</c>) and Gemma 3 text (<c>gemma3_text</c>) from a Hugging Face config.json, with
/// transformers' defaults: head_dim 256, query_pre_attn_scalar 256, sliding_window 4096, tied embeddings;
/// Gemma 2's caps 50 (attention) and 30 (logits) unless null; Gemma 3's rope_theta 1 000 000 for the global
/// layers (with its rope_scaling) and rope_local_base_freq 10 000 for the local ones. Which layers are windowed
/// comes from <c>layer_types</c> when present (it must repeat windowed layers then one global layer), else Gemma 2
/// windows the even layers and Gemma 3 follows <c>sliding_window_pattern</c> (6). Gemma 3 with a soft cap is refused:
/// llama.cpp does not apply one.
/// </summary>
internal static class HfGemma
{
    public static LlamaConfig Read(HfConfigFields f, LlamaConfig config)
    {
        var gemma2 = config.Architecture == ModelArchitecture.Gemma2;
        var headDim = f.Int("head_dim", 2, 4096, 256);
        if (headDim % 2 != 0) throw f.Error("head_dim", $"must be even for RoPE; got {headDim}");
        var queryScalar = f.Number("query_pre_attn_scalar", 256, 0, 1e9);
        var attentionCap = Cap(f, "attn_logit_softcapping", gemma2 ? 50 : 0);
        var finalCap = Cap(f, "final_logit_softcapping", gemma2 ? 30 : 0);
        if (!gemma2)
            foreach (var (key, cap) in new[] { ("attn_logit_softcapping", attentionCap), ("final_logit_softcapping", finalCap) })
                if (cap != 0) throw f.Error(key, $"{cap} is not supported for gemma3 (Gemma 3 has no soft-capping, and llama.cpp applies none): must be null");

        var (theta, scaling, localTheta) = (config.RopeTheta, config.RopeScaling, 0f);
        if (!gemma2)
        {
            localTheta = (float)f.Number("rope_local_base_freq", 10000, 1, 1e12);
            if (!f.Has("rope_theta") && !f.Has("rope_parameters")) theta = 1_000_000f;
            // transformers 5 keeps one parameter set per layer type.
            if (f.Object("rope_parameters") is { } parameters && parameters.Object("full_attention") is { } global)
            {
                var (t, s) = HfConfigRope.ReadObject(global, f, headDim);
                (theta, scaling) = ((float)t, s);
                if (parameters.Object("sliding_attention") is { } local)
                {
                    var (lt, ls) = HfConfigRope.ReadObject(local, f, headDim);
                    if (ls.Kind != RopeScalingKind.None)
                        throw local.Error("rope_type", "scaling of the sliding-window layers' RoPE is not supported (Gemma 3 scales the global layers only)");
                    localTheta = (float)lt;
                }
            }
        }
        return config with
        {
            HeadDim = headDim,
            HasQkNorm = !gemma2,
            RopeTheta = theta,
            RopeScaling = scaling,
            TiedOutputHead = f.Bool("tie_word_embeddings", true),
            SlidingWindow = f.Int("sliding_window", 1, 1 << 24, 4096),
            SlidingWindowPattern = Pattern(f, config.LayerCount, gemma2 ? 2 : f.Int("sliding_window_pattern", 1, 4096, 6)),
            Gemma = new GemmaConfig
            {
                EmbeddingScale = MathF.Sqrt(config.EmbeddingLength),
                // The same float operations as llama.cpp's 1/sqrtf(head_dim), so a config whose scalar is the head dim matches its GGUF.
                AttentionScale = 1f / MathF.Sqrt((float)queryScalar),
                AttentionLogitSoftCap = attentionCap,
                FinalLogitSoftCap = finalCap,
                LocalRopeTheta = localTheta,
            },
        };
    }

    /// <summary>A cap: absent gives transformers' default, null none (0).</summary>
    private static float Cap(HfConfigFields f, string key, float fallback)
    {
        if (f.IsNull(key)) return 0;
        if (!f.Has(key)) return fallback;
        return (float)f.Number(key, 0, 0, 1e9);
    }

    private static int Pattern(HfConfigFields f, int layers, int fallback)
    {
        if (!f.TryGet("layer_types", out var list))
            return fallback;
        if (list.ValueKind != JsonValueKind.Array || list.GetArrayLength() != layers
            || list.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String || e.GetString() is not ("sliding_attention" or "full_attention")))
            throw f.Error("layer_types", $"must list \"sliding_attention\" or \"full_attention\" for each of the {layers} layers; got {HfConfigFields.Show(list)}");
        var types = list.EnumerateArray().Select(e => e.GetString() == "sliding_attention").ToArray();
        var firstGlobal = Array.IndexOf(types, false);
        // Every layer windowed: the default pattern says the same when the model is shorter than one period.
        var pattern = firstGlobal >= 0 ? firstGlobal + 1 : layers < fallback ? fallback : 1;
        for (var l = 0; l < layers; l++)
            if (types[l] != (pattern <= 1 || l % pattern < pattern - 1))
                throw f.Error("layer_types", $"layer {l} breaks the pattern of {pattern - 1} sliding-window layers then one full-attention layer (other arrangements are not supported)");
        return pattern;
    }
}
