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
public sealed record PreparedEmbeddings(IReadOnlyList<int[]> TokenIds, int TokenCount)
{
    /// <summary>False when <see cref="TokenCount"/> is an estimate (an upstream model without a configured tokenizer; its inputs' ids are then empty).</summary>
    public bool IsExact { get; init; } = true;
}

/// <summary>
/// The vectors, one per input in order; the tokens to charge when the backend was told them (an upstream's
/// <c>usage.prompt_tokens</c>; null: the prepared count), and the upstream endpoint that answered (null: this server's engine).
/// </summary>
public sealed record EmbeddingResult(float[][] Vectors)
{
    public int? PromptTokens { get; init; }

    public string? Endpoint { get; init; }
}

/// <summary>Stage 8 for <c>/v1/embeddings</c>: a capability a backend may offer besides generation.</summary>
public interface IEmbeddingBackend
{
    EmbeddingSupport Embeddings { get; }

    /// <summary>Stage 6: each input's tokens (text tokenized as the model wants, ids checked); throws <see cref="ApiException"/> for an input the model cannot take.</summary>
    PreparedEmbeddings PrepareEmbeddings(EmbeddingsRequest request);

    /// <summary>One vector per input, in order: unit length and of the model's full width from the engine; as the upstream sent them (checked) from a pool.</summary>
    Task<EmbeddingResult> EmbedAsync(EmbeddingsRequest request, PreparedEmbeddings prepared, CancellationToken cancellationToken);
}
