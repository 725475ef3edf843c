using Bulwark.Engine.Model.Config;

namespace Bulwark.Server.Backends.Embedded;

/// <summary>
/// How a model served by the embedded engine answers <c>/v1/embeddings</c>: the pooling its file declares unless
/// the operator names one (<see cref="Pooling"/>; <see cref="PoolingType.None"/> named explicitly refuses embeddings),
/// and whether its vectors may be cut short (<see cref="MatryoshkaMinDimensions"/>).
/// </summary>
public sealed record EmbeddingSettings
{
    /// <summary>Null: as the model file says (GGUF pooling_type, 1_Pooling/config.json); a generator then embeds nothing.</summary>
    public PoolingType? Pooling { get; init; }

    /// <summary>0: the model was not trained for shortened vectors, <c>dimensions</c> must be its width; N: widths N..width are allowed.</summary>
    public int MatryoshkaMinDimensions { get; init; }

    /// <summary>The pooling to serve with: the operator's choice, else the file's.</summary>
    public PoolingType PoolingFor(PoolingType declared) => Pooling ?? declared;
}
