using Bulwark.Engine.Serving.Sampling;

namespace Bulwark.Engine.Serving;

/// <summary>One generation asked of the engine, in tokens: the prompt, sampling, who asks and how urgently. A server builds it from its own request vocabulary.</summary>
public sealed record EngineRequest
{
    public required IReadOnlyList<int> PromptTokens { get; init; }

    public SamplingParams Sampling { get; init; } = new();

    /// <summary>Salts the prefix cache: a tenant can never hit blocks another tenant computed.</summary>
    public string Tenant { get; init; } = "";

    /// <summary>Further isolates the prefix cache within the tenant (vLLM's <c>cache_salt</c>).</summary>
    public string? CacheSalt { get; init; }

    /// <summary>Smaller runs first and is preempted last; equal priorities run in arrival order.</summary>
    public int Priority { get; init; }

    /// <summary>Lets the reader end single choices early; null when it never will.</summary>
    public ChoiceControl? Choices { get; init; }

    /// <summary>
    /// Constrained decoding: every output is a prefix of a sentence of this grammar, and a choice that
    /// ends with <see cref="FinishReason.Stop"/> on end of sequence is a whole sentence. Null: unconstrained.
    /// </summary>
    public Constraints.TokenConstraint? Constraint { get; init; }

    /// <summary>Speculative decoding for this request; null takes the engine's default, <see cref="Speculation.SpeculativeConfig.Off"/> turns it off.</summary>
    public Speculation.SpeculativeConfig? Speculative { get; init; }

    /// <summary>Turns output tokens into text for the events and for stop strings; without it, stop strings cannot be used.</summary>
    public Func<IIncrementalDetokenizer>? Detokenizer { get; init; }
}
