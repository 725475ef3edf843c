namespace Bulwark.Engine.Serving.Scheduling;

/// <summary>Limits of one scheduler step.</summary>
public sealed record SchedulerOptions
{
    /// <summary>Tokens computed in one forward pass, decode and prefill together (<c>--max-batched-tokens</c>).</summary>
    public int MaxBatchedTokens { get; init; } = 512;

    /// <summary>Sequences running at once (<c>--max-seqs</c>).</summary>
    public int MaxSequences { get; init; } = 64;

    /// <summary>Largest prefill chunk of one sequence in one step, so long prompts do not stall decodes.</summary>
    public int MaxPrefillChunk { get; init; } = 512;

    /// <summary>
    /// Prefill tokens a step may carry while any sequence is decoding — new prompts, preempted sequences'
    /// recomputation and speculative draft tokens together. A step's time grows with its tokens, and every
    /// decoding sequence waits for the whole step: on a CPU a 512-token prefill step takes seconds, so without
    /// this cap new arrivals stall the streams already running (inter-token latency). With it, a decoding
    /// sequence waits for at most (decoding sequences + this cap) tokens between two of its tokens, as long as
    /// <see cref="MaxBatchedTokens"/> holds that many. Steps with no decode use the full <see cref="MaxBatchedTokens"/>.
    /// </summary>
    public int MaxPrefillTokensWhileDecoding { get; init; } = 64;

    public void Validate()
    {
        if (MaxBatchedTokens is < 1 or > 1_048_576)
            throw new ArgumentOutOfRangeException(nameof(MaxBatchedTokens), $"max batched tokens must be between 1 and 1048576; got {MaxBatchedTokens}");
        if (MaxSequences is < 1 or > 4096)
            throw new ArgumentOutOfRangeException(nameof(MaxSequences), $"max sequences must be between 1 and 4096; got {MaxSequences}");
        if (MaxPrefillChunk < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxPrefillChunk), $"max prefill chunk must be at least 1; got {MaxPrefillChunk}");
        if (MaxPrefillTokensWhileDecoding is < 1 or > 1_048_576)
            throw new ArgumentOutOfRangeException(nameof(MaxPrefillTokensWhileDecoding), $"max prefill tokens while decoding must be between 1 and 1048576; got {MaxPrefillTokensWhileDecoding}");
    }
}
