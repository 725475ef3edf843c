namespace Bulwark.Engine.Model.Config;

/// <summary>
/// RoPE settings of a Hugging Face config: the older top-level <c>rope_theta</c> + <c>rope_scaling</c>
/// ({"rope_type" or "type", "factor", ...}) and transformers 5's <c>rope_parameters</c>
/// ({"rope_theta", "rope_type", "factor", "low_freq_factor", "high_freq_factor",
/// "original_max_position_embeddings"}). When both are present, <c>rope_parameters</c> wins, as in transformers 5.
/// </summary>
internal static class HfConfigRope
{
    private const string SupportedTypes = "default, linear, llama3, longrope (su)";

    public static (double Theta, RopeScaling Scaling) Read(HfConfigFields config, int headDim)
    {
        RefusePartialRotary(config);
        if (config.Object("rope_parameters") is { } parameters)
        {
            RefusePartialRotary(parameters);
            return (Theta(parameters), Scaling(parameters, config, headDim));
        }
        var theta = Theta(config);
        return (theta, config.Object("rope_scaling") is { } scaling ? Scaling(scaling, config, headDim) : RopeScaling.None);
    }

    /// <summary>One RoPE parameter object ({"rope_theta", "rope_type", "factor", ...}), as Gemma 3's per-layer-type <c>rope_parameters</c> hold them.</summary>
    public static (double Theta, RopeScaling Scaling) ReadObject(HfConfigFields parameters, HfConfigFields config, int headDim)
    {
        RefusePartialRotary(parameters);
        return (Theta(parameters), Scaling(parameters, config, headDim));
    }

    private static double Theta(HfConfigFields f) => f.Number("rope_theta", 10000.0, 1.0, 1e12);

    private static RopeScaling Scaling(HfConfigFields f, HfConfigFields config, int headDim)
    {
        // Older configs spell the kind "type"; transformers accepts both.
        var kind = f.String("rope_type") ?? f.String("type") ?? "default";
        switch (kind)
        {
            case "default":
                return RopeScaling.None;
            case "linear":
                return new RopeScaling(RopeScalingKind.Linear, (float)Factor(f));
            case "llama3":
                var low = f.Number("low_freq_factor", 1.0, 0, 1e6);
                var high = f.Number("high_freq_factor", 4.0, 0, 1e6);
                if (!(high > low))
                    throw f.Error("high_freq_factor", $"must be above low_freq_factor {low}; got {high}");
                return new RopeScaling(RopeScalingKind.Llama3, (float)Factor(f), (float)low, (float)high,
                    f.Int("original_max_position_embeddings", 1, 1 << 24, 8192));
            case "longrope" or "su":
                return HfConfigLongRope.Read(f, config, headDim);
            default:
                throw f.Error(f.Has("rope_type") ? "rope_type" : "type", $"\"{HfConfigFields.Cut(kind)}\" is not supported (supported: {SupportedTypes})");
        }
    }

    private static double Factor(HfConfigFields f)
    {
        if (!f.Has("factor")) throw f.Error("factor", "is missing");
        return f.Number("factor", 1.0, 0, 1e6);
    }

    private static void RefusePartialRotary(HfConfigFields f)
    {
        var partial = f.Number("partial_rotary_factor", 1.0);
        if (partial != 1.0) throw f.Error("partial_rotary_factor", $"partial RoPE is not supported: must be 1; got {partial}");
    }

}
