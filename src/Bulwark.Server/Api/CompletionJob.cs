using Bulwark.Server.Backends;

namespace Bulwark.Server.Api;

/// <summary>Which OpenAI response shape a job is answered in.</summary>
public enum ResponseKind
{
    /// <summary><c>/v1/chat/completions</c>: <c>message</c>/<c>delta</c> objects, logprobs as <c>content</c> entries.</summary>
    Chat,
    /// <summary><c>/v1/completions</c>: <c>text</c>, legacy logprobs lists.</summary>
    Text,
}

/// <summary>
/// A validated OpenAI request, tokenized and ready to run: every field has been range-checked
/// and the prompt plus <see cref="MaxTokens"/> fits the context.
/// </summary>
public sealed record CompletionJob
{
    public required ResponseKind Kind { get; init; }
    public required string Model { get; init; }
    public required int[] PromptTokenIds { get; init; }
    public required int MaxTokens { get; init; }
    public int Choices { get; init; } = 1;
    public bool Stream { get; init; }
    public bool IncludeUsage { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = [];
    public SamplingParameters Sampling { get; init; } = new();

    /// <summary>Null: no logprobs. Otherwise alternatives per position (0 = only the chosen token's).</summary>
    public int? TopLogprobs { get; init; }

    public string? User { get; init; }

    /// <summary><c>response_format</c> <c>json_object</c>/<c>json_schema</c>: each choice's final text is checked (null: plain text).</summary>
    public Guardrails.Output.JsonOutputFormat? ResponseFormat { get; init; }

    /// <summary>What the quota reserves up front: the prompt plus every choice's max_tokens.</summary>
    public long ReservedTokens => PromptTokenIds.Length + (long)Choices * MaxTokens;

    public GenerationRequest ToGenerationRequest(int choiceIndex, RequestCaller caller) => new()
    {
        PromptTokenIds = PromptTokenIds,
        MaxTokens = MaxTokens,
        // Each choice gets its own random stream; with a seed, choice i is reproducible on its own.
        Sampling = Sampling.Seed is { } seed && choiceIndex > 0 ? Sampling with { Seed = seed + (ulong)choiceIndex } : Sampling,
        TopLogprobs = TopLogprobs,
        Tenant = caller.Tenant,
        Priority = caller.Priority,
    };
}
