namespace Bulwark.Engine.Serving;

/// <summary>Why a choice ended, in OpenAI's vocabulary; null where a choice has not ended yet.</summary>
public enum FinishReason
{
    /// <summary>A stop token, an end-of-sequence token or a stop string.</summary>
    Stop,

    /// <summary>max_tokens or the model's context length was reached.</summary>
    Length,

    /// <summary>
    /// An output guard ended the choice (a secret in block mode): <c>content_filter</c>. The engine
    /// never produces it; it is here so the whole server speaks one vocabulary of finish reasons.
    /// </summary>
    ContentFilter,

    /// <summary>
    /// The request's deadline passed while the choice was generating. OpenAI's vocabulary has no word
    /// for it: the API answers <c>length</c> (the text is cut short, as by max_tokens) with
    /// <c>stop_reason</c> <c>deadline</c>. The engine never produces it.
    /// </summary>
    Deadline,
}
