namespace Bulwark.Engine.Serving.Sampling;

/// <summary>
/// How the next token is chosen, in the order applied: logit bias, repetition penalty
/// (prompt and output), frequency and presence penalties (output), temperature, min-p,
/// top-k, top-p, then a draw from the remaining mass. Temperature 0 is greedy.
/// </summary>
public sealed record SamplingParams
{
    public const int MaxTopLogprobs = 20;
    public const int MaxChoices = 128;

    public float Temperature { get; init; } = 1f;

    /// <summary>Keep the k most likely tokens; 0 keeps all.</summary>
    public int TopK { get; init; }

    public float TopP { get; init; } = 1f;

    /// <summary>Drop tokens less likely than MinP × the most likely token's probability.</summary>
    public float MinP { get; init; }

    /// <summary>Divides positive logits and multiplies negative ones of tokens seen in prompt or output (1 = off).</summary>
    public float RepetitionPenalty { get; init; } = 1f;

    /// <summary>Subtracted once per occurrence in the output (OpenAI semantics).</summary>
    public float FrequencyPenalty { get; init; }

    /// <summary>Subtracted once if the token occurs in the output.</summary>
    public float PresencePenalty { get; init; }

    /// <summary>Added to the logit of each listed token id.</summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }

    /// <summary>Makes sampling reproducible per request: choice i draws from a stream derived from (seed, i).</summary>
    public long? Seed { get; init; }

    public int MaxTokens { get; init; } = 256;

    public IReadOnlyList<int>? StopTokenIds { get; init; }

    /// <summary>Generation ends before the first occurrence of any of these; the stop string is not emitted.</summary>
    public IReadOnlyList<string>? StopStrings { get; init; }

    /// <summary>Keep going past the model's end-of-sequence tokens.</summary>
    public bool IgnoreEos { get; init; }

    /// <summary>Number of choices; they share the prompt's KV blocks.</summary>
    public int N { get; init; } = 1;

    /// <summary>Report the chosen token's log-probability (of the model's raw distribution).</summary>
    public bool Logprobs { get; init; }

    /// <summary>Also report this many most likely alternatives per position (0..20).</summary>
    public int TopLogprobs { get; init; }

    public bool IsGreedy => Temperature == 0f;

    internal bool HasPenalties => RepetitionPenalty != 1f || FrequencyPenalty != 0f || PresencePenalty != 0f;

    /// <summary>Throws with the field, the value and the allowed range when a value is out of range.</summary>
    public void Validate(int vocabSize)
    {
        Check(nameof(Temperature), Temperature, 0f, 100f);
        if (TopK < 0 || TopK > vocabSize)
            throw new ArgumentOutOfRangeException(nameof(TopK), $"top_k must be between 0 and {vocabSize}; got {TopK}");
        Check(nameof(TopP), TopP, float.Epsilon, 1f);
        Check(nameof(MinP), MinP, 0f, 1f);
        Check(nameof(RepetitionPenalty), RepetitionPenalty, float.Epsilon, 100f);
        Check(nameof(FrequencyPenalty), FrequencyPenalty, -2f, 2f);
        Check(nameof(PresencePenalty), PresencePenalty, -2f, 2f);
        if (MaxTokens < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxTokens), $"max_tokens must be at least 1; got {MaxTokens}");
        if (N is < 1 or > MaxChoices)
            throw new ArgumentOutOfRangeException(nameof(N), $"n must be between 1 and {MaxChoices}; got {N}");
        if (TopLogprobs is < 0 or > MaxTopLogprobs)
            throw new ArgumentOutOfRangeException(nameof(TopLogprobs), $"top_logprobs must be between 0 and {MaxTopLogprobs}; got {TopLogprobs}");
        if (LogitBias is not null)
            foreach (var (token, bias) in LogitBias)
            {
                if ((uint)token >= (uint)vocabSize)
                    throw new ArgumentOutOfRangeException(nameof(LogitBias), $"logit_bias token id must be between 0 and {vocabSize - 1}; got {token}");
                Check(nameof(LogitBias), bias, -100f, 100f);
            }
        if (StopTokenIds is not null)
            foreach (var token in StopTokenIds)
                if ((uint)token >= (uint)vocabSize)
                    throw new ArgumentOutOfRangeException(nameof(StopTokenIds), $"stop token id must be between 0 and {vocabSize - 1}; got {token}");
        if (StopStrings is not null)
            foreach (var stop in StopStrings)
                if (string.IsNullOrEmpty(stop))
                    throw new ArgumentException("stop strings must not be empty", nameof(StopStrings));
    }

    private static void Check(string name, float value, float min, float max)
    {
        if (!(value >= min && value <= max))
            throw new ArgumentOutOfRangeException(name, $"{name} must be between {min} and {max}; got {value}");
    }
}
