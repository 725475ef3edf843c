namespace Bulwark.Server.Requests;

/// <summary>How <c>/v1/embeddings</c> writes each vector: a JSON array of numbers, or base64 of little-endian float32 (OpenAI's two forms).</summary>
public enum EmbeddingEncoding
{
    Float,
    Base64,
}

/// <summary>
/// A validated <c>POST /v1/embeddings</c> body: one or more inputs (each text, or token ids the client
/// counted), how to encode the vectors, and the width asked for. Caller fields are set by the spine.
/// </summary>
public sealed record EmbeddingsRequest
{
    public required string Model { get; init; }

    /// <summary>The inputs in the client's order; the response's <c>index</c> is the position here.</summary>
    public required IReadOnlyList<PromptInput> Inputs { get; init; }

    public EmbeddingEncoding Encoding { get; init; } = EmbeddingEncoding.Float;

    /// <summary>The width asked for (<c>dimensions</c>); null: the model's own.</summary>
    public int? Dimensions { get; init; }

    public string? User { get; init; }

    public string? Tenant { get; init; }

    /// <summary>The caller's priority: larger runs first, as for generation.</summary>
    public int Priority { get; init; }

    /// <summary>OpenAI's answer to an input longer than the model's context: 400, never a silent cut.</summary>
    public static ApiException ContextExceeded(string path, int contextLength, int tokens) =>
        ApiException.Invalid(path, $"This model's maximum context length is {contextLength} tokens, however {path} has {tokens} tokens. Please reduce the input.", "context_length_exceeded");
}
