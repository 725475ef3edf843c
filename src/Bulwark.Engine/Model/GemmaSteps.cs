using Bulwark.Engine.Model.Config;

namespace Bulwark.Engine.Model;

/// <summary>The pieces Gemma adds to the decoder block (<see cref="GemmaConfig"/>), shared by the session and the batched executor.</summary>
public static class GemmaSteps
{
    private static readonly float SqrtTwoOverPi = MathF.Sqrt(2f / MathF.PI);

    /// <summary>GELU, tanh approximation (transformers' gelu_pytorch_tanh, ggml's gelu): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
    public static float Gelu(float x) => 0.5f * x * (1f + MathF.Tanh(SqrtTwoOverPi * (x + 0.044715f * x * x * x)));

    /// <summary>GeGLU: gate ← gelu(gate) ⊙ up, in place.</summary>
    public static void GeluGate(Span<float> gate, ReadOnlySpan<float> up)
    {
        if (up.Length < gate.Length) throw new ArgumentException($"up has {up.Length} values for {gate.Length} gates");
        for (var i = 0; i < gate.Length; i++) gate[i] = Gelu(gate[i]) * up[i];
    }

    /// <summary>cap·tanh(x / cap) on every value, in place; a cap of 0 leaves them as they are.</summary>
    public static void SoftCap(Span<float> values, float cap)
    {
        if (cap == 0) return;
        for (var i = 0; i < values.Length; i++) values[i] = cap * MathF.Tanh(values[i] / cap);
    }

    /// <summary>
    /// What the query is multiplied by so that the attention kernels' built-in 1/√head_dim gives
    /// <see cref="GemmaConfig.AttentionScale"/>; 1 when they already agree (every Gemma below 27B).
    /// </summary>
    public static float QueryFactor(LlamaConfig config) =>
        config.Gemma is { } g && g.AttentionScale != 1f / MathF.Sqrt(config.HeadDim) ? g.AttentionScale * MathF.Sqrt(config.HeadDim) : 1f;
}
