using Bulwark.Engine.Memory;

namespace Bulwark.Engine.Model.Weights;

/// <summary>
/// All weights of a decoder. Matrices point into the memory-mapped model files, which this
/// object keeps open; vectors (norms, biases) were converted to float32 native buffers.
/// </summary>
public sealed class LlamaWeights : IDisposable
{
    private readonly IReadOnlyList<IDisposable> _owned;

    public LlamaWeights(WeightMatrix tokenEmbedding, IReadOnlyList<LayerWeights> layers, NativeBuffer outputNorm,
        WeightMatrix output, float[] ropeInverseFrequencies, IReadOnlyList<IDisposable> owned)
    {
        TokenEmbedding = tokenEmbedding;
        Layers = layers;
        OutputNorm = outputNorm;
        Output = output;
        RopeInverseFrequencies = ropeInverseFrequencies;
        _owned = owned;
    }

    public WeightMatrix TokenEmbedding { get; }
    public IReadOnlyList<LayerWeights> Layers { get; }
    public NativeBuffer OutputNorm { get; }

    /// <summary>The output head; the same object as <see cref="TokenEmbedding"/> when tied.</summary>
    public WeightMatrix Output { get; }

    /// <summary>Per rotated pair, with rope scaling applied (see <see cref="Config.RopeScaling"/>).</summary>
    public float[] RopeInverseFrequencies { get; }

    /// <summary>LongRoPE's frequencies for contexts longer than <see cref="LongRopeAbove"/> positions; null for other scalings.</summary>
    public float[]? LongRopeInverseFrequencies { get; init; }

    public int LongRopeAbove { get; init; }

    /// <summary>The frequencies a cache of <paramref name="contextLength"/> positions per sequence rotates with (see <see cref="Config.RopeScaling.FactorsFor"/>).</summary>
    public float[] RopeInverseFrequenciesFor(int contextLength) =>
        LongRopeInverseFrequencies is { } longer && contextLength > LongRopeAbove ? longer : RopeInverseFrequencies;
    /// <summary>Gemma 3's windowed layers' own RoPE (another base, no scaling); null when every layer uses <see cref="RopeInverseFrequencies"/>.</summary>
    public float[]? LocalRopeInverseFrequencies { get; init; }

    /// <summary>The RoPE frequencies layer <paramref name="layer"/> of <paramref name="config"/> rotates by.</summary>
    public float[] RopeFor(Config.LlamaConfig config, int layer) => RopeFor(config, layer, RopeInverseFrequencies);

    /// <summary>As <see cref="RopeFor(Config.LlamaConfig, int)"/> with <paramref name="global"/> as the global layers' frequencies (a caller that chose them itself).</summary>
    public float[] RopeFor(Config.LlamaConfig config, int layer, float[] global) =>
        LocalRopeInverseFrequencies is { } local && config.WindowOf(layer) > 0 ? local : global;

    public void Dispose()
    {
        foreach (var layer in Layers)
        {
            foreach (var buffer in new[] { layer.AttentionNorm, layer.FeedForwardNorm, layer.QueryBias, layer.KeyBias, layer.ValueBias, layer.QueryNorm, layer.KeyNorm, layer.PostAttentionNorm, layer.PostFeedForwardNorm })
                buffer?.Dispose();
        }
        OutputNorm.Dispose();
        // Packed copies (and quantized copies) of the matrices live in native memory of their own.
        foreach (var layer in Layers)
            foreach (var matrix in layer.Matrices)
                matrix.Dispose();
        Output.Dispose();
        TokenEmbedding.Dispose();
        foreach (var o in _owned) o.Dispose();
    }
}
