namespace Bulwark.Server.Backends;

/// <summary>
/// One sequence to generate, already validated and tokenized by the API layer. Stop strings are
/// applied by the API layer on the decoded text (so they work the same for every backend); the
/// backend stops at end-of-sequence tokens and at <see cref="MaxTokens"/>.
/// </summary>
public sealed record GenerationRequest
{
    public required int[] PromptTokenIds { get; init; }
    public required int MaxTokens { get; init; }
    public SamplingParameters Sampling { get; init; } = new();

    /// <summary>How many alternatives to report per token with its log-probability (0..20); null: no logprobs.</summary>
    public int? TopLogprobs { get; init; }

    /// <summary>Token ids that also end the sequence (besides the model's own end-of-sequence tokens).</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];

    /// <summary>Who asks: isolates prefix-cache entries between tenants. Null is the anonymous tenant.</summary>
    public string? Tenant { get; init; }

    /// <summary>Higher runs first when the engine must choose.</summary>
    public int Priority { get; init; }
}
