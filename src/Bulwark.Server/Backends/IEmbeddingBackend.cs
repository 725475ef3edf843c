using Bulwark.Server.Requests;

namespace Bulwark.Server.Backends;

/// <summary>
/// What a model offers <c>/v1/embeddings</c>: the width of its vectors, the shortest width it was trained to
/// be cut to (Matryoshka representation learning; equal to the width when it was not), or why it embeds nothing.
/// </summary>
public sealed record EmbeddingSupport(int Dimensions, int MinDimensions, string? Refusal = null)
{
    public static EmbeddingSupport None(string reason) => new(0, 0, reason);
}

/// <summary>The inputs of an embeddings request as the backend will run them: token ids per input, and their total (what quotas meter).</summary>
public sealed record PreparedEmbeddings(IReadOnlyList<int[]> TokenIds, int TokenCount);

/// <summary>Stage 8 for <c>/v1/embeddings</c>: a capability a backend may offer besides generation.</summary>
public interface IEmbeddingBackend
{
    EmbeddingSupport Embeddings { get; }

    /// <summary>Stage 6: each input's tokens (text tokenized as the model wants, ids checked); throws <see cref="ApiException"/> for an input the model cannot take.</summary>
    PreparedEmbeddings PrepareEmbeddings(EmbeddingsRequest request);

    /// <summary>One unit-length vector per input, in order, of the model's full width.</summary>
    Task<float[][]> EmbedAsync(EmbeddingsRequest request, PreparedEmbeddings prepared, CancellationToken cancellationToken);
}
