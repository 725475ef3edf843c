using Bulwark.Engine.Memory;

namespace Bulwark.Engine.Model.Weights;

/// <summary>One decoder block's weights (read-only), named as in the Llama paper's block.</summary>
public sealed class LayerWeights
{
    public required NativeBuffer AttentionNorm { get; init; }
    public required WeightMatrix Query { get; init; }
    public required WeightMatrix Key { get; init; }
    public required WeightMatrix Value { get; init; }
    public required WeightMatrix Output { get; init; }

    /// <summary>Qwen2's projection biases; null for architectures without them.</summary>
    public NativeBuffer? QueryBias { get; init; }
    public NativeBuffer? KeyBias { get; init; }
    public NativeBuffer? ValueBias { get; init; }

    /// <summary>Qwen3's per-head RMSNorm weights [head_dim]; null otherwise.</summary>
    public NativeBuffer? QueryNorm { get; init; }
    public NativeBuffer? KeyNorm { get; init; }

    /// <summary>Gemma's RMSNorm of the attention output and of the MLP output, before each is added to the residual; null otherwise.</summary>
    public NativeBuffer? PostAttentionNorm { get; init; }
    public NativeBuffer? PostFeedForwardNorm { get; init; }

    public required NativeBuffer FeedForwardNorm { get; init; }
    /// <summary>The dense MLP; null in a mixture-of-experts layer, which has <see cref="Experts"/> instead.</summary>
    public WeightMatrix? Gate { get; init; }
    public WeightMatrix? Up { get; init; }
    public WeightMatrix? Down { get; init; }

    /// <summary>A mixture-of-experts layer's router and experts (Mixtral, Qwen3-MoE); null for a dense MLP.</summary>
    public ExpertWeights? Experts { get; init; }

    /// <summary>The block's weight matrices (what is packed at load and disposed with the model): attention, then the dense MLP or the router and every expert's.</summary>
    public WeightMatrix[] Matrices => Experts is { } e
        ? [Query, Key, Value, Output, .. e.Matrices]
        : [Query, Key, Value, Output, Gate!, Up!, Down!];
}

/// <summary>
/// A mixture-of-experts MLP: the router [experts × dim] and, per expert, a SwiGLU MLP. From a GGUF file each
/// expert's matrices are views of rows of the merged 3-D tensors (<c>ffn_gate_exps</c> [experts × ff × dim] ...):
/// the file's pages stay the only copy, in the file's type.
/// </summary>
public sealed class ExpertWeights
{
    public required WeightMatrix Router { get; init; }
    public required WeightMatrix[] Gate { get; init; }
    public required WeightMatrix[] Up { get; init; }
    public required WeightMatrix[] Down { get; init; }

    public int Count => Gate.Length;

    public WeightMatrix[] Matrices => [Router, .. Gate, .. Up, .. Down];
}
