namespace Bulwark.Server.Backends;

/// <summary>Why a sequence ended, in OpenAI's vocabulary.</summary>
public enum FinishReason
{
    /// <summary>Not finished: more tokens follow.</summary>
    None,
    /// <summary>An end-of-sequence token or a stop string.</summary>
    Stop,
    /// <summary><c>max_tokens</c> or the context length was reached.</summary>
    Length,
    /// <summary>The output guard ended the choice (a secret in block mode): <c>content_filter</c>.</summary>
    ContentFilter,
}

/// <summary>One alternative at a position, for <c>top_logprobs</c>.</summary>
public readonly record struct TokenLogprob(int TokenId, string Text, float Logprob);

/// <summary>
/// One step of a generated sequence. <see cref="TokenId"/> is -1 on a closing event that carries
/// only the finish reason (for example when the model emitted its end-of-sequence token, whose
/// text is never shown). <see cref="Text"/> is the text this token adds, which is empty while a
/// multi-byte character is still incomplete.
/// </summary>
public readonly record struct GeneratedToken(
    int TokenId,
    string Text,
    FinishReason Finish = FinishReason.None,
    float Logprob = 0f,
    TokenLogprob[]? TopLogprobs = null)
{
    public bool IsClosingOnly => TokenId < 0;
}
