using System.Text.Json;

namespace Bulwark.Engine.Model.Config;

/// <summary>
/// Phi-3's LongRoPE (<c>rope_type</c>/<c>type</c> "longrope", formerly "su") as transformers'
/// <c>_compute_longrope_parameters</c> reads it: <c>short_factor</c> and <c>long_factor</c>, one per rotated pair;
/// the original context from the top-level <c>original_max_position_embeddings</c> (Phi3Config), else from the
/// scaling object (transformers 5), else <c>max_position_embeddings</c>; <c>attention_factor</c> when given, else
/// √(1 + ln s / ln original) with s = max_position_embeddings / original (1 when s ≤ 1).
/// </summary>
internal static class HfConfigLongRope
{
    public static RopeScaling Read(HfConfigFields scaling, HfConfigFields config, int headDim)
    {
        var context = config.Int("max_position_embeddings", 1, 1 << 24);
        var original = config.Has("original_max_position_embeddings")
            ? config.Int("original_max_position_embeddings", 1, 1 << 24)
            : scaling.Int("original_max_position_embeddings", 1, 1 << 24, context);
        var attention = scaling.Has("attention_factor")
            ? (float)scaling.Number("attention_factor", 1.0, 0, 100)
            : RopeScaling.LongRopeAttentionFactor(context, original);
        return new RopeScaling(RopeScalingKind.LongRope, OriginalContextLength: original)
        {
            ShortFactors = Factors(scaling, "short_factor", headDim),
            LongFactors = Factors(scaling, "long_factor", headDim),
            AttentionFactor = attention,
        };
    }

    private static RopeFactors Factors(HfConfigFields f, string key, int headDim)
    {
        if (!f.TryGet(key, out var list)) throw f.Error(key, $"is missing (LongRoPE needs {headDim / 2} factors, one per rotated pair)");
        if (list.ValueKind != JsonValueKind.Array || list.GetArrayLength() != headDim / 2)
            throw f.Error(key, $"must be an array of {headDim / 2} numbers (one per rotated pair of head_dim {headDim}); got {HfConfigFields.Show(list)}");
        var values = new float[headDim / 2];
        var i = 0;
        foreach (var entry in list.EnumerateArray())
        {
            if (entry.ValueKind != JsonValueKind.Number || !entry.TryGetDouble(out var value) || !(value > 0 && value <= 1e6))
                throw f.Error(key, $"entry {i} must be a number above 0 and at most 1000000; got {HfConfigFields.Show(entry)}");
            values[i++] = (float)value;
        }
        return new RopeFactors(values);
    }
}
