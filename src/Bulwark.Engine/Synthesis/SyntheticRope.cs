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
internal static class SyntheticRope
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
                var factors = scaling.Llama3FrequencyFactors(spec.HeadDim, spec.RopeTheta);
                writer.AddTensor("rope_freqs.weight", GgmlType.F32, [factors.Length], Quantize.Tensor(GgmlType.F32, factors, factors.Length));
                break;
        }
    }

    public static void WriteHuggingFaceScaling(Utf8JsonWriter w, SyntheticModelSpec spec)
    {
        var scaling = spec.RopeScaling;
        if (scaling.Kind == RopeScalingKind.None)
        {
            w.WriteNull("rope_scaling");
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
