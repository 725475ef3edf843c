namespace Bulwark.Server.Api;

/// <summary>
/// Bounds on everything a request may ask for (configuration section <c>Bulwark:Limits</c>).
/// Each is checked by <see cref="Validate"/> at start-up, so a bad setting stops the server
/// with a clear message rather than surfacing per request.
/// </summary>
public sealed class ApiLimits
{
    public const string Section = "Bulwark:Limits";

    /// <summary>Request bodies above this many bytes get 413 (OpenAI's own limit is far larger; 2 MB covers long prompts).</summary>
    public long MaxRequestBodyBytes { get; set; } = 2 * 1024 * 1024;

    /// <summary>Upper bound of <c>max_tokens</c>/<c>max_completion_tokens</c>; the context length also applies.</summary>
    public int MaxTokens { get; set; } = 4096;

    /// <summary>Upper bound of <c>n</c>, the number of choices per request.</summary>
    public int MaxChoices { get; set; } = 8;

    /// <summary>At most this many stop strings, each at most <see cref="MaxStopLength"/> characters (OpenAI allows 4).</summary>
    public int MaxStopStrings { get; set; } = 4;

    public int MaxStopLength { get; set; } = 64;

    /// <summary>At most this many chat messages per request.</summary>
    public int MaxMessages { get; set; } = 256;

    /// <summary>Total prompt text, in characters, across all messages.</summary>
    public int MaxPromptCharacters { get; set; } = 512 * 1024;

    /// <summary>At most this many <c>logit_bias</c> entries (OpenAI's limit is 300).</summary>
    public int MaxLogitBiasEntries { get; set; } = 300;

    /// <summary>Upper bound of <c>top_logprobs</c> (OpenAI's limit is 20).</summary>
    public int MaxTopLogprobs { get; set; } = 20;

    /// <summary>Length of <c>user</c> and other free-form identifiers.</summary>
    public int MaxIdentifierLength { get; set; } = 256;

    /// <summary>How long a generation request may take from arrival to its last token, unless the client asks otherwise (<c>X-Bulwark-Timeout</c>).</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>The longest deadline a client may ask for.</summary>
    public TimeSpan MaxRequestTimeout { get; set; } = TimeSpan.FromHours(1);

    /// <summary>The deadline settings as the spine applies them.</summary>
    public Requests.RequestDeadline Deadline => new(RequestTimeout, MaxRequestTimeout);

    public IEnumerable<string> Validate()
    {
        if (MaxRequestBodyBytes is < 1024 or > 64L * 1024 * 1024)
            yield return $"Bulwark:Limits:MaxRequestBodyBytes must be between 1024 and 67108864; got {MaxRequestBodyBytes}.";
        if (MaxTokens is < 1 or > 1_000_000) yield return $"Bulwark:Limits:MaxTokens must be between 1 and 1000000; got {MaxTokens}.";
        if (MaxChoices is < 1 or > 128) yield return $"Bulwark:Limits:MaxChoices must be between 1 and 128; got {MaxChoices}.";
        if (MaxStopStrings is < 0 or > 16) yield return $"Bulwark:Limits:MaxStopStrings must be between 0 and 16; got {MaxStopStrings}.";
        if (MaxStopLength is < 1 or > 1024) yield return $"Bulwark:Limits:MaxStopLength must be between 1 and 1024; got {MaxStopLength}.";
        if (MaxMessages is < 1 or > 10_000) yield return $"Bulwark:Limits:MaxMessages must be between 1 and 10000; got {MaxMessages}.";
        if (MaxPromptCharacters < 1) yield return $"Bulwark:Limits:MaxPromptCharacters must be at least 1; got {MaxPromptCharacters}.";
        if (MaxLogitBiasEntries is < 0 or > 10_000) yield return $"Bulwark:Limits:MaxLogitBiasEntries must be between 0 and 10000; got {MaxLogitBiasEntries}.";
        if (MaxTopLogprobs is < 0 or > 20) yield return $"Bulwark:Limits:MaxTopLogprobs must be between 0 and 20; got {MaxTopLogprobs}.";
        if (MaxIdentifierLength is < 1 or > 4096) yield return $"Bulwark:Limits:MaxIdentifierLength must be between 1 and 4096; got {MaxIdentifierLength}.";
        if (MaxRequestTimeout < TimeSpan.FromSeconds(1) || MaxRequestTimeout > TimeSpan.FromDays(1))
            yield return $"Bulwark:Limits:MaxRequestTimeout must be between 00:00:01 and 1.00:00:00; got {MaxRequestTimeout}.";
        if (RequestTimeout < TimeSpan.FromSeconds(1) || RequestTimeout > MaxRequestTimeout)
            yield return $"Bulwark:Limits:RequestTimeout must be between 00:00:01 and MaxRequestTimeout ({MaxRequestTimeout}); got {RequestTimeout}.";
    }
}
