using System.Text;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Randomness;

namespace Bulwark.Engine.Synthesis;

/// <summary>
/// Generates a synthetic model's weights. Each tensor has its own PRNG stream seeded from the
/// spec's seed and the tensor's name, so a tensor's values do not depend on which other tensors
/// exist or in which order they are written. Values are uniform with the standard deviation a
/// trained model's initialisation would give (1/√fan-in), so activations stay near unit scale
/// through the layers, attention is neither flat nor one-hot, and logits spread over a few
/// units (greedy choices have real margins). Only + and × of IEEE floats are used: the same
/// bytes on every machine.
/// </summary>
public static class SyntheticWeights
{
    /// <summary>Spread of logits: the output head's standard deviation is this over √dim.</summary>
    private const float LogitScale = 3f;

    public static IEnumerable<SyntheticTensor> Generate(SyntheticModelSpec spec)
    {
        spec.Validate();
        int dim = spec.Dim, hd = spec.HeadDim, q = spec.Heads * hd, kv = spec.KvHeads * hd, ff = spec.FeedForward;
        yield return Matrix(spec, "token_embd.weight", spec.Vocab, dim, 1f);
        yield return Vector(spec, "output_norm.weight", dim, 1f, 0.2f);
        if (spec.HasOutputHead) yield return Matrix(spec, "output.weight", spec.Vocab, dim, LogitScale / MathF.Sqrt(dim));
        for (var l = 0; l < spec.Layers; l++)
        {
            string N(string part) => $"blk.{l}.{part}";
            yield return Vector(spec, N("attn_norm.weight"), dim, 1f, 0.2f);
            if (spec.Architecture == "phi3")
            {
                // Phi-3 fuses q, k, v (rows one after another) and gate, up (gate first), as its checkpoints and llama.cpp do.
                yield return Matrix(spec, N("attn_qkv.weight"), q + 2 * kv, dim, 1f / MathF.Sqrt(dim));
                yield return Matrix(spec, N("attn_output.weight"), dim, q, 1f / MathF.Sqrt(q));
                yield return Vector(spec, N("ffn_norm.weight"), dim, 1f, 0.2f);
                yield return Matrix(spec, N("ffn_up.weight"), 2 * ff, dim, 1f / MathF.Sqrt(dim));
                yield return Matrix(spec, N("ffn_down.weight"), dim, ff, 1f / MathF.Sqrt(ff));
                continue;
            }
            yield return Matrix(spec, N("attn_q.weight"), q, dim, 1f / MathF.Sqrt(dim));
            yield return Matrix(spec, N("attn_k.weight"), kv, dim, 1f / MathF.Sqrt(dim));
            yield return Matrix(spec, N("attn_v.weight"), kv, dim, 1f / MathF.Sqrt(dim));
            if (spec.Architecture == "qwen2")
            {
                yield return Vector(spec, N("attn_q.bias"), q, 0f, 0.3f);
                yield return Vector(spec, N("attn_k.bias"), kv, 0f, 0.3f);
                yield return Vector(spec, N("attn_v.bias"), kv, 0f, 0.3f);
            }
            if (spec.Architecture is "qwen3" or "gemma3" or "qwen3moe")
            {
                yield return Vector(spec, N("attn_q_norm.weight"), hd, 1f, 0.2f);
                yield return Vector(spec, N("attn_k_norm.weight"), hd, 1f, 0.2f);
            }
            yield return Matrix(spec, N("attn_output.weight"), dim, q, 1f / MathF.Sqrt(q));
            if (spec.IsGemma) yield return Vector(spec, N("post_attention_norm.weight"), dim, 1f, 0.2f);
            yield return Vector(spec, N("ffn_norm.weight"), dim, 1f, 0.2f);
            if (spec.IsMixtureOfExperts)
            {
                // The router spreads its logits (4/√dim: about ±4 over unit activations) so that near ties between the
                // k-th and the next expert, where any rounding flips the choice, are rare. Experts merged as GGUF stores them.
                var experts = spec.ExpertCount;
                yield return Matrix(spec, N("ffn_gate_inp.weight"), experts, dim, 4f / MathF.Sqrt(dim));
                yield return Experts(spec, N("ffn_gate_exps.weight"), experts, ff, dim, 1f / MathF.Sqrt(dim));
                yield return Experts(spec, N("ffn_up_exps.weight"), experts, ff, dim, 1f / MathF.Sqrt(dim));
                yield return Experts(spec, N("ffn_down_exps.weight"), experts, dim, ff, 1f / MathF.Sqrt(ff));
                continue;
            }
            yield return Matrix(spec, N("ffn_gate.weight"), ff, dim, 1f / MathF.Sqrt(dim));
            yield return Matrix(spec, N("ffn_up.weight"), ff, dim, 1f / MathF.Sqrt(dim));
            yield return Matrix(spec, N("ffn_down.weight"), dim, ff, 1f / MathF.Sqrt(ff));
            if (spec.IsGemma) yield return Vector(spec, N("post_ffw_norm.weight"), dim, 1f, 0.2f);
        }
    }

    /// <summary>Total float count of <see cref="Generate"/>'s tensors, for progress reports.</summary>
    public static long ParameterCount(SyntheticModelSpec spec)
    {
        long dim = spec.Dim, q = spec.Heads * spec.HeadDim, kv = spec.KvHeads * spec.HeadDim, ff = spec.FeedForward;
        var perLayer = 2 * dim + dim * (q + 2 * kv) + q * dim + 3 * dim * ff * Math.Max(1, spec.ExpertCount) + spec.ExpertCount * dim;
        if (spec.Architecture == "qwen2") perLayer += q + 2 * kv;
        if (spec.Architecture is "qwen3" or "gemma3" or "qwen3moe") perLayer += 2 * spec.HeadDim;
        if (spec.IsGemma) perLayer += 2 * dim;
        return spec.Vocab * dim * (spec.HasOutputHead ? 2 : 1) + dim + spec.Layers * perLayer;
    }

    private static SyntheticTensor Matrix(SyntheticModelSpec spec, string name, int rows, int columns, float deviation) =>
        new(name, [rows, columns], Uniform(spec, name, checked(rows * columns), 0f, deviation * MathF.Sqrt(3f)));

    private static SyntheticTensor Experts(SyntheticModelSpec spec, string name, int experts, int rows, int columns, float deviation) =>
        new(name, [experts, rows, columns], Uniform(spec, name, checked(experts * rows * columns), 0f, deviation * MathF.Sqrt(3f)));

    private static SyntheticTensor Vector(SyntheticModelSpec spec, string name, int length, float center, float halfWidth) =>
        new(name, [length], Uniform(spec, name, length, center, halfWidth));

    /// <summary>
    /// Uniform in [center - halfWidth, center + halfWidth) from the stream of (seed, name). For
    /// F16/BF16 models every value is rounded to that precision, so the F32 norms of a GGUF file
    /// equal the 16-bit norms of the safetensors twin.
    /// </summary>
    private static float[] Uniform(SyntheticModelSpec spec, string name, int count, float center, float halfWidth)
    {
        var random = new SplitMixRandom(spec.Seed ^ Fnv1a(name));
        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            var v = center + halfWidth * (float)(2 * random.NextDouble() - 1);
            values[i] = spec.DType switch
            {
                GgmlType.F16 => (float)(Half)v,
                GgmlType.BF16 => BitConverter.Int32BitsToSingle(Quantize.ToBFloat16(v) << 16),
                _ => v,
            };
        }
        return values;
    }

    private static ulong Fnv1a(string text)
    {
        var hash = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }
        return hash;
    }
}
