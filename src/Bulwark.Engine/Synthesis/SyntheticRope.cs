using System.Text.Json;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Model.Config;

namespace Bulwark.Engine.Synthesis;

/// <summary>
/// A synthetic model's RoPE scaling, written the way each format carries it: GGUF as llama.cpp's converter
/// writes it (linear as <c>rope.scaling.*</c> keys, Llama 3 as the <c>rope_freqs.weight</c> tensor of
/// per-pair divisors), Hugging Face as config.json's <c>rope_scaling</c> object.
/// </summary>
public static class SyntheticRope
{
    public static void AddToGguf(SyntheticModelSpec spec, GgufWriter writer)
    {
        var arch = spec.Architecture;
        var scaling = spec.RopeScaling;
        switch (scaling.Kind)
        {
            case RopeScalingKind.Linear:
                writer.Add($"{arch}.rope.scaling.type", "linear").Add($"{arch}.rope.scaling.factor", scaling.Factor);
                break;
            case RopeScalingKind.Llama3:
                AddFactors(writer, "rope_freqs.weight", scaling.Llama3FrequencyFactors(spec.HeadDim, spec.RopeTheta));
                break;
            case RopeScalingKind.LongRope:
                AddLongRope(writer, arch, scaling, RopeScaling.LongRopeAttentionFactor(spec.Context, scaling.OriginalContextLength));
                break;
        }
    }

    /// <summary>LongRoPE as llama.cpp's converter writes it for phi3 (also what Bulwark's converter writes).</summary>
    public static void AddLongRope(GgufWriter writer, string arch, RopeScaling scaling, float attentionFactor)
    {
        writer.Add($"{arch}.rope.scaling.attn_factor", attentionFactor)
            .Add($"{arch}.rope.scaling.original_context_length", (uint)scaling.OriginalContextLength);
        AddFactors(writer, "rope_factors_long.weight", scaling.LongFactors!.Values);
        AddFactors(writer, "rope_factors_short.weight", scaling.ShortFactors!.Values);
    }

    public static void AddFactors(GgufWriter writer, string name, float[] factors) =>
        writer.AddTensor(name, GgmlType.F32, [factors.Length], Quantize.Tensor(GgmlType.F32, factors, factors.Length));

    /// <summary>
    /// Deterministic LongRoPE factors shaped like Phi-3's: short ones from 1 to 1.5, long ones from 1 to
    /// <paramref name="longFactor"/>, rising from the highest frequency pair to the lowest.
    /// </summary>
    public static RopeScaling LongRope(int headDim, int originalContextLength, float longFactor)
    {
        var pairs = headDim / 2;
        float Ramp(int i, float top) => 1f + (top - 1f) * i / Math.Max(1, pairs - 1);
        return new RopeScaling(RopeScalingKind.LongRope, OriginalContextLength: originalContextLength)
        {
            ShortFactors = new RopeFactors(Enumerable.Range(0, pairs).Select(i => Ramp(i, 1.5f)).ToArray()),
            LongFactors = new RopeFactors(Enumerable.Range(0, pairs).Select(i => Ramp(i, longFactor)).ToArray()),
        };
    }

    public static void WriteHuggingFaceScaling(Utf8JsonWriter w, SyntheticModelSpec spec)
    {
        var scaling = spec.RopeScaling;
        if (scaling.Kind == RopeScalingKind.None)
        {
            w.WriteNull("rope_scaling");
            return;
        }
        if (scaling.Kind == RopeScalingKind.LongRope)
        {
            // As Phi-3.5-mini's config.json: the original context at the top level, the factors in rope_scaling.
            w.WriteNumber("original_max_position_embeddings", scaling.OriginalContextLength);
            w.WriteStartObject("rope_scaling");
            w.WriteString("type", "longrope");
            foreach (var (key, factors) in new[] { ("long_factor", scaling.LongFactors!), ("short_factor", scaling.ShortFactors!) })
            {
                w.WriteStartArray(key);
                foreach (var f in factors.Values) w.WriteNumberValue(f);
                w.WriteEndArray();
            }
            w.WriteEndObject();
            return;
        }
        w.WriteStartObject("rope_scaling");
        w.WriteString("rope_type", scaling.Kind == RopeScalingKind.Llama3 ? "llama3" : "linear");
        w.WriteNumber("factor", scaling.Factor);
        if (scaling.Kind == RopeScalingKind.Llama3)
        {
            w.WriteNumber("low_freq_factor", scaling.LowFrequencyFactor);
            w.WriteNumber("high_freq_factor", scaling.HighFrequencyFactor);
            w.WriteNumber("original_max_position_embeddings", scaling.OriginalContextLength);
        }
        w.WriteEndObject();
    }
}
