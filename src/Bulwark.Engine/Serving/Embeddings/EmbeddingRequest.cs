using Bulwark.Engine.Model.Config;

namespace Bulwark.Engine.Serving.Embeddings;

/// <summary>
/// One input to embed, in tokens: the engine runs its prefill like a prompt's (same queue, same step
/// budget, chunked, preemptible), keeps no KV afterwards and samples nothing, and pools the final norm's
/// output of its tokens into one vector.
/// </summary>
public sealed record EmbeddingRequest
{
    public required IReadOnlyList<int> Tokens { get; init; }

    /// <summary>How the tokens' states become one vector; <see cref="PoolingType.None"/> is refused.</summary>
    public required PoolingType Pooling { get; init; }

    /// <summary>Scale the vector to unit length (as sentence-transformers' Normalize module and OpenAI's vectors are).</summary>
    public bool Normalize { get; init; } = true;

    /// <summary>Who asks (kept for symmetry with generation; embeddings never touch the prefix cache).</summary>
    public string Tenant { get; init; } = "";

    /// <summary>Smaller runs first and is preempted last, as for generation.</summary>
    public int Priority { get; init; }
}
