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
    public required WeightMatrix Gate { get; init; }
    public required WeightMatrix Up { get; init; }
    public required WeightMatrix Down { get; init; }

    /// <summary>The block's seven weight matrices (what is packed at load and disposed with the model).</summary>
    public WeightMatrix[] Matrices => [Query, Key, Value, Output, Gate, Up, Down];
}
