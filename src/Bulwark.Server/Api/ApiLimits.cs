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

    /// <summary>Size of a JSON schema (<c>response_format</c>, <c>guided_json</c>, TGI <c>grammar</c>) in UTF-8 bytes.</summary>
    public int MaxSchemaBytes { get; set; } = 64 * 1024;

    /// <summary>Nesting of a JSON schema (subschemas within subschemas).</summary>
    public int MaxSchemaDepth { get; set; } = 32;

    /// <summary>Values in one schema <c>enum</c>.</summary>
    public int MaxSchemaEnumValues { get; set; } = 256;

    /// <summary>Properties of one object schema.</summary>
    public int MaxSchemaProperties { get; set; } = 256;

    /// <summary>Characters of a regular expression (<c>guided_regex</c>, a schema's <c>pattern</c>, TGI <c>regex</c> grammar).</summary>
    public int MaxRegexLength { get; set; } = 1000;

    /// <summary>States of the automaton a regular expression compiles to; a pattern that needs more is refused with 400.</summary>
    public int MaxRegexStates { get; set; } = 2000;

    /// <summary>Strings in <c>guided_choice</c>.</summary>
    public int MaxGuidedChoices { get; set; } = 256;

    /// <summary>Characters of one <c>guided_choice</c> string.</summary>
    public int MaxGuidedChoiceLength { get; set; } = 1000;

    /// <summary>Inputs of one <c>/v1/embeddings</c> request (OpenAI's limit is 2048).</summary>
    public int MaxEmbeddingInputs { get; set; } = 2048;

    /// <summary>Tokens of all inputs of one <c>/v1/embeddings</c> request together (OpenAI's limit is 300000); each input is also bounded by the context length.</summary>
    public int MaxEmbeddingTokens { get; set; } = 300_000;

    /// <summary>Functions in <c>tools</c>, and tool calls in one assistant message (OpenAI allows 128 tools).</summary>
    public int MaxTools { get; set; } = 128;

    /// <summary>Characters of a function name (OpenAI: 64, of a-z, A-Z, 0-9, _ and -).</summary>
    public int MaxToolNameLength { get; set; } = 64;

    /// <summary>Size of the whole <c>tools</c> array in UTF-8 bytes (descriptions and schemas together; each schema is also held to <see cref="MaxSchemaBytes"/>).</summary>
    public int MaxToolsBytes { get; set; } = 256 * 1024;

    /// <summary>The constraint compiler's bounds from these settings.</summary>
    public Bulwark.Engine.Serving.Constraints.ConstraintLimits Constraints => new()
    {
        MaxSchemaDepth = MaxSchemaDepth,
        MaxEnumValues = MaxSchemaEnumValues,
        MaxProperties = MaxSchemaProperties,
        MaxRegexLength = MaxRegexLength,
        MaxDfaStates = MaxRegexStates,
        MaxChoices = MaxGuidedChoices,
        MaxChoiceLength = MaxGuidedChoiceLength,
    };

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
        if (MaxSchemaBytes is < 16 or > 16 * 1024 * 1024) yield return $"Bulwark:Limits:MaxSchemaBytes must be between 16 and 16777216; got {MaxSchemaBytes}.";
        if (MaxSchemaDepth is < 1 or > 64) yield return $"Bulwark:Limits:MaxSchemaDepth must be between 1 and 64; got {MaxSchemaDepth}.";
        if (MaxSchemaEnumValues is < 1 or > 100_000) yield return $"Bulwark:Limits:MaxSchemaEnumValues must be between 1 and 100000; got {MaxSchemaEnumValues}.";
        if (MaxSchemaProperties is < 1 or > 100_000) yield return $"Bulwark:Limits:MaxSchemaProperties must be between 1 and 100000; got {MaxSchemaProperties}.";
        if (MaxRegexLength is < 1 or > 100_000) yield return $"Bulwark:Limits:MaxRegexLength must be between 1 and 100000; got {MaxRegexLength}.";
        if (MaxRegexStates is < 2 or > 100_000) yield return $"Bulwark:Limits:MaxRegexStates must be between 2 and 100000; got {MaxRegexStates}.";
        if (MaxGuidedChoices is < 1 or > 100_000) yield return $"Bulwark:Limits:MaxGuidedChoices must be between 1 and 100000; got {MaxGuidedChoices}.";
        if (MaxGuidedChoiceLength is < 1 or > 100_000) yield return $"Bulwark:Limits:MaxGuidedChoiceLength must be between 1 and 100000; got {MaxGuidedChoiceLength}.";
        if (MaxEmbeddingInputs is < 1 or > 100_000) yield return $"Bulwark:Limits:MaxEmbeddingInputs must be between 1 and 100000; got {MaxEmbeddingInputs}.";
        if (MaxEmbeddingTokens is < 1 or > 100_000_000) yield return $"Bulwark:Limits:MaxEmbeddingTokens must be between 1 and 100000000; got {MaxEmbeddingTokens}.";
        if (MaxTools is < 1 or > 10_000) yield return $"Bulwark:Limits:MaxTools must be between 1 and 10000; got {MaxTools}.";
        if (MaxToolNameLength is < 1 or > 1024) yield return $"Bulwark:Limits:MaxToolNameLength must be between 1 and 1024; got {MaxToolNameLength}.";
        if (MaxToolsBytes is < 64 or > 16 * 1024 * 1024) yield return $"Bulwark:Limits:MaxToolsBytes must be between 64 and 16777216; got {MaxToolsBytes}.";
        if (MaxRequestTimeout < TimeSpan.FromSeconds(1) || MaxRequestTimeout > TimeSpan.FromDays(1))
            yield return $"Bulwark:Limits:MaxRequestTimeout must be between 00:00:01 and 1.00:00:00; got {MaxRequestTimeout}.";
        if (RequestTimeout < TimeSpan.FromSeconds(1) || RequestTimeout > MaxRequestTimeout)
            yield return $"Bulwark:Limits:RequestTimeout must be between 00:00:01 and MaxRequestTimeout ({MaxRequestTimeout}); got {RequestTimeout}.";
    }
}
