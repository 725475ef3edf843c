using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Memory;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Weights;

namespace Bulwark.Engine.Model;

/// <summary>
/// The pieces of a decoder block as small functions over spans, so a batched forward over a
/// paged KV cache can reuse them: norm, project, per-head norm, RoPE, attention over given K/V, MLP.
/// </summary>
public static class DecoderSteps
{
    public static void Norm(ReadOnlySpan<float> x, NativeBuffer weight, float epsilon, Span<float> output) =>
        VectorOps.RmsNorm(x, weight.Span, epsilon, output);

    /// <summary>y = W·x (+ bias).</summary>
    public static void Project(WeightMatrix weight, ReadOnlySpan<float> x, Span<float> y, NativeBuffer? bias = null)
    {
        weight.MatVec(x, y);
        if (bias is null) return;
        VectorOps.Add(y, bias.Span);
    }

    /// <summary>Qwen3's q/k norm: RMSNorm over each head separately, in place.</summary>
    public static void NormHeads(Span<float> vector, int headDim, NativeBuffer weight, float epsilon)
    {
        for (var start = 0; start < vector.Length; start += headDim)
        {
            var head = vector.Slice(start, headDim);
            VectorOps.RmsNorm(head, weight.Span, epsilon, head);
        }
    }

    public static void ApplyRope(Span<float> vector, LlamaConfig config, int position, ReadOnlySpan<float> inverseFrequencies)
    {
        Span<float> cosSin = stackalloc float[config.HeadDim];
        VectorOps.Rope(vector, config.HeadDim, position, inverseFrequencies, config.RopeLayout, cosSin);
        // LongRoPE scales cos and sin; scaling the rotated vector is the same product.
        if (config.RopeScaling.AttentionFactor != 1f) VectorOps.Scale(vector, config.RopeScaling.AttentionFactor);
    }

    /// <summary>
    /// Causal attention of one query over <paramref name="positions"/> cached keys/values laid out
    /// [position][kv_heads × head_dim]. Query heads share KV heads in groups (GQA/MQA).
    /// <paramref name="scores"/> needs at least <paramref name="positions"/> floats.
    /// </summary>
    public static void Attend(ReadOnlySpan<float> query, ReadOnlySpan<float> keys, ReadOnlySpan<float> values,
        int positions, LlamaConfig config, Span<float> scores, Span<float> output) =>
        Kernels.Cpu.Attention.Attend(query, keys, values, positions, config.HeadCount, config.KeyValueHeadCount, config.HeadDim, scores, output);

    /// <summary>SwiGLU MLP: output = Down(silu(Gate·x) ⊙ Up·x) (GeGLU, gelu for silu, with <paramref name="gelu"/>). gate/up need feed_forward_length floats.</summary>
    public static void Mlp(LayerWeights layer, ReadOnlySpan<float> x, Span<float> gate, Span<float> up, Span<float> output, bool gelu = false)
    {
        WeightMatrix.MatMulShared(x, 1, layer.Gate!, gate, layer.Up!, up);
        Gate(gate, up, gelu);
        layer.Down!.MatVec(gate, output);
    }

    /// <summary>gate ← act(gate) ⊙ up: silu (SwiGLU) or, for Gemma, gelu (GeGLU).</summary>
    public static void Gate(Span<float> gate, ReadOnlySpan<float> up, bool gelu)
    {
        if (gelu) GemmaSteps.GeluGate(gate, up);
        else VectorOps.SiluGate(gate, up);
    }
}
