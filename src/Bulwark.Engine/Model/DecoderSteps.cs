using Bulwark.Engine.Kernels.Reference;

namespace Bulwark.Engine.Model;

/// <summary>
/// The pieces of a decoder block as small functions over spans, so a batched forward over a
/// paged KV cache can reuse them: norm, project, per-head norm, RoPE, attention over given K/V, MLP.
/// </summary>
public static class DecoderSteps
{
    public static void Norm(ReadOnlySpan<float> x, NativeBuffer weight, float epsilon, Span<float> output) =>
        RmsNorm.Apply(x, weight.Span, epsilon, output);

    /// <summary>y = W·x (+ bias).</summary>
    public static void Project(WeightMatrix weight, ReadOnlySpan<float> x, Span<float> y, NativeBuffer? bias = null)
    {
        weight.MatVec(x, y);
        if (bias is null) return;
        var b = bias.Span;
        for (var i = 0; i < y.Length; i++) y[i] += b[i];
    }

    /// <summary>Qwen3's q/k norm: RMSNorm over each head separately, in place.</summary>
    public static void NormHeads(Span<float> vector, int headDim, NativeBuffer weight, float epsilon)
    {
        for (var start = 0; start < vector.Length; start += headDim)
        {
            var head = vector.Slice(start, headDim);
            RmsNorm.Apply(head, weight.Span, epsilon, head);
        }
    }

    public static void ApplyRope(Span<float> vector, LlamaConfig config, int position, ReadOnlySpan<float> inverseFrequencies) =>
        Rope.Apply(vector, config.HeadDim, position, inverseFrequencies, config.RopeLayout);

    /// <summary>
    /// Causal attention of one query over <paramref name="positions"/> cached keys/values laid out
    /// [position][kv_heads × head_dim]. Query heads share KV heads in groups (GQA/MQA).
    /// <paramref name="scores"/> needs at least <paramref name="positions"/> floats.
    /// </summary>
    public static void Attend(ReadOnlySpan<float> query, ReadOnlySpan<float> keys, ReadOnlySpan<float> values,
        int positions, LlamaConfig config, Span<float> scores, Span<float> output)
    {
        var headDim = config.HeadDim;
        var kvLength = config.KeyValueLength;
        var group = config.HeadCount / config.KeyValueHeadCount;
        var scale = 1f / MathF.Sqrt(headDim);
        var s = scores[..positions];
        for (var head = 0; head < config.HeadCount; head++)
        {
            var q = query.Slice(head * headDim, headDim);
            var kvOffset = head / group * headDim;
            for (var t = 0; t < positions; t++)
                s[t] = MatVec.Dot(q, keys.Slice(t * kvLength + kvOffset, headDim)) * scale;
            Softmax.Apply(s);
            var o = output.Slice(head * headDim, headDim);
            o.Clear();
            for (var t = 0; t < positions; t++)
            {
                var v = values.Slice(t * kvLength + kvOffset, headDim);
                var a = s[t];
                for (var i = 0; i < headDim; i++) o[i] += a * v[i];
            }
        }
    }

    /// <summary>SwiGLU MLP: output = Down(silu(Gate·x) ⊙ Up·x). gate/up need feed_forward_length floats.</summary>
    public static void Mlp(LayerWeights layer, ReadOnlySpan<float> x, Span<float> gate, Span<float> up, Span<float> output)
    {
        layer.Gate.MatVec(x, gate);
        layer.Up.MatVec(x, up);
        Silu.GateInPlace(gate, up);
        layer.Down.MatVec(gate, output);
    }
}
