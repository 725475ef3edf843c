namespace Bulwark.Engine.Serving.Speculation;

/// <summary>How draft tokens are proposed for speculative decoding.</summary>
public enum SpeculativeMethod
{
    /// <summary>No speculation: one token per step.</summary>
    None,

    /// <summary>
    /// Prompt lookup (vLLM's <c>ngram</c>): the sequence's last n tokens are looked up earlier in its prompt
    /// and output, and the tokens that followed there are proposed. No second model.
    /// </summary>
    Ngram,

    /// <summary>
    /// A second, smaller model of the same vocabulary (vLLM's <c>draft_model</c>) proposes the next tokens greedily,
    /// batched for every drafting sequence in its own paged KV cache. Needs an engine built with a draft model.
    /// </summary>
    DraftModel,
}

/// <summary>
/// Speculative decoding of one request (or the engine's default): up to <see cref="NumSpeculativeTokens"/>
/// draft tokens per step, verified by the target model in the same batched forward pass. Output is exactly
/// what decoding without speculation gives (greedy: the same tokens; sampling: the same distribution, and
/// with a seed the same tokens). Field names follow vLLM's <c>speculative_config</c>.
/// </summary>
public sealed record SpeculativeConfig
{
    /// <summary>Most draft tokens a step may verify for one sequence.</summary>
    public const int MaxSpeculativeTokens = 16;

    /// <summary>Longest n-gram prompt lookup matches.</summary>
    public const int MaxLookup = 8;

    public static readonly SpeculativeConfig Off = new() { Method = SpeculativeMethod.None };

    public SpeculativeMethod Method { get; init; } = SpeculativeMethod.Ngram;

    /// <summary>Draft tokens proposed per step (k).</summary>
    public int NumSpeculativeTokens { get; init; } = 4;

    /// <summary>Longest tail n-gram looked up; the search tries this length first, then shorter ones.</summary>
    public int PromptLookupMax { get; init; } = 3;

    /// <summary>Shortest tail n-gram that may propose drafts.</summary>
    public int PromptLookupMin { get; init; } = 1;

    public bool Enabled => Method != SpeculativeMethod.None;

    /// <summary>Throws with the field, value and limit when a value is out of range.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Method))
            throw new ArgumentOutOfRangeException(nameof(Method), $"speculative method must be ngram, draft_model or none; got {Method}");
        if (!Enabled)
            return;
        if (NumSpeculativeTokens is < 1 or > MaxSpeculativeTokens)
            throw new ArgumentOutOfRangeException(nameof(NumSpeculativeTokens),
                $"num_speculative_tokens must be between 1 and {MaxSpeculativeTokens}; got {NumSpeculativeTokens}");
        if (PromptLookupMax is < 1 or > MaxLookup)
            throw new ArgumentOutOfRangeException(nameof(PromptLookupMax), $"prompt_lookup_max must be between 1 and {MaxLookup}; got {PromptLookupMax}");
        if (PromptLookupMin < 1 || PromptLookupMin > PromptLookupMax)
            throw new ArgumentOutOfRangeException(nameof(PromptLookupMin),
                $"prompt_lookup_min must be between 1 and prompt_lookup_max ({PromptLookupMax}); got {PromptLookupMin}");
    }
}
