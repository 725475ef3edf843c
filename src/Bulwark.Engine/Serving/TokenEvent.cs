using Bulwark.Engine.Serving.Sampling;

namespace Bulwark.Engine.Serving;

/// <summary>
/// One generated token of one choice. <see cref="Text"/> is the text released with it (held
/// back while it could be the start of a stop string; never part of a stop string). The last
/// event of a choice carries its <see cref="FinishReason"/>.
/// </summary>
public readonly record struct TokenEvent
{
    /// <summary>Which of the request's n choices.</summary>
    public int Index { get; init; }

    public int TokenId { get; init; }

    /// <summary>Null when the request has no detokenizer.</summary>
    public string? Text { get; init; }

    /// <summary>
    /// The text of this token alone, as the detokenizer gave it before stop strings held anything
    /// back (empty while a multi-byte character is incomplete; null without a detokenizer). What
    /// <c>logprobs</c> show for the token.
    /// </summary>
    public string? TokenText { get; init; }

    /// <summary>True when the choice ended on a stop string (rather than a stop or end-of-sequence token).</summary>
    public bool StopStringMatched { get; init; }

    /// <summary>
    /// True when <see cref="TokenId"/> is a stop or end-of-sequence token: it ends the choice, its
    /// text is never shown, and it is not counted as output.
    /// </summary>
    public bool IsStopToken { get; init; }

    /// <summary>Log-probability of the token under the raw model distribution, when requested.</summary>
    public float? Logprob { get; init; }

    public TokenLogprob[]? TopLogprobs { get; init; }

    public FinishReason? FinishReason { get; init; }

    /// <summary>From arrival at the engine to this token (the first event's value is the time to first token).</summary>
    public TimeSpan SinceArrival { get; init; }

    /// <summary>From arrival to the first step that computed any of the prompt.</summary>
    public TimeSpan QueueTime { get; init; }

    /// <summary>
    /// The engine's step that produced this token, counted from 1 since the engine started (steps of every
    /// request). With <see cref="ArrivalStep"/> and <see cref="ComputedTokens"/> it measures what the
    /// scheduler controls independent of the machine's speed: time to first token and gaps in steps and in
    /// tokens computed.
    /// </summary>
    public long Step { get; init; }

    /// <summary>Steps the engine had completed when the step loop took the request in (TTFT in steps = <see cref="Step"/> − this).</summary>
    public long ArrivalStep { get; init; }

    /// <summary>Tokens the engine computed (prefill, decode and draft tokens of every request) up to and including <see cref="Step"/>.</summary>
    public long ComputedTokens { get; init; }

    public int PromptTokens { get; init; }

    /// <summary>Prompt tokens served from the prefix cache on first admission.</summary>
    public int CachedPromptTokens { get; init; }

    /// <summary>Tokens this choice has produced so far, this one included.</summary>
    public int CompletionTokens { get; init; }
}
