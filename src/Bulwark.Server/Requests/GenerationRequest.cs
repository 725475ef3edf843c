using Bulwark.Engine.Serving.Sampling;

namespace Bulwark.Server.Requests;

/// <summary>
/// One generation request after the contract stage validated it: the one vocabulary every stage and
/// every backend reads, whichever route (OpenAI chat, OpenAI completions, TGI) it came in on.
/// Exactly one of <see cref="Messages"/> and <see cref="Prompt"/> is set. <see cref="Sampling"/> is the
/// engine's own record (temperature … logit bias, seed, stop strings, n, logprobs); its
/// <see cref="SamplingParams.MaxTokens"/> is set by the prompt stage once the prompt is counted, from
/// <see cref="RequestedMaxTokens"/> or the route's <see cref="DefaultMaxTokens"/>.
/// </summary>
public sealed record GenerationRequest
{
    /// <summary>The served model's id.</summary>
    public required string Model { get; init; }

    /// <summary>A chat: the conversation the model's chat template renders.</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; init; }

    /// <summary>A completion: the prompt as text or token ids.</summary>
    public PromptInput? Prompt { get; init; }

    public SamplingParams Sampling { get; init; } = new();

    /// <summary>What the client asked for (null: the route's default), bounded by the context later.</summary>
    public int? RequestedMaxTokens { get; init; }

    /// <summary>The route's default output length (OpenAI chat: the server's limit; completions: 16; TGI: 100).</summary>
    public int DefaultMaxTokens { get; init; }

    /// <summary>The field that set the output length, as errors name it (<c>max_tokens</c>, <c>parameters.max_new_tokens</c>…).</summary>
    public string MaxTokensParam { get; init; } = "max_tokens";

    /// <summary>Number of choices (<c>n</c>); the same as <see cref="SamplingParams.N"/>.</summary>
    public int Choices => Sampling.N;

    /// <summary>Null: no logprobs. Otherwise alternatives per position (0 = only the chosen token's).</summary>
    public int? TopLogprobs => Sampling.Logprobs ? Sampling.TopLogprobs : null;

    public bool Stream { get; init; }

    public bool IncludeUsage { get; init; }

    public string? User { get; init; }

    /// <summary>JSON output asked for; null: plain text.</summary>
    public ResponseFormat? ResponseFormat { get; init; }

    /// <summary>
    /// Constrained decoding asked for (<c>response_format</c> json_object/json_schema, <c>guided_json</c>,
    /// <c>guided_regex</c>, <c>guided_choice</c>, TGI <c>grammar</c>); null: free text.
    /// </summary>
    public OutputConstraint? Constraint { get; init; }

    /// <summary>Speculative decoding asked for (<c>speculative</c>); null: the server's default. Only embedded models speculate.</summary>
    public Bulwark.Engine.Serving.Speculation.SpeculativeConfig? Speculative { get; init; }

    /// <summary>Tools the model may call (<c>tools</c>, <c>tool_choice</c>, <c>parallel_tool_calls</c>); null: none.</summary>
    public ToolRequest? Tools { get; init; }

    /// <summary>Who asks, set by the spine from the caller: isolates prefix-cache entries between tenants (null: anonymous).</summary>
    public string? Tenant { get; init; }

    /// <summary>Higher runs first when admission or the engine must choose; set by the spine from the caller.</summary>
    public int Priority { get; init; }
}
