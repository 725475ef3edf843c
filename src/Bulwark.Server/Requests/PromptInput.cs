namespace Bulwark.Server.Requests;

/// <summary>
/// The prompt of a text completion or a TGI request: text (tokenized by the model, with its
/// beginning-of-sequence token where it wants one) or token ids the client counted itself.
/// Exactly one of the two is set.
/// </summary>
public sealed record PromptInput
{
    private PromptInput(string? text, int[]? tokenIds) => (Text, TokenIds) = (text, tokenIds);

    public string? Text { get; }

    public int[]? TokenIds { get; }

    public static PromptInput FromText(string text) => new(text, null);

    public static PromptInput FromTokens(int[] tokenIds) => new(null, tokenIds);
}
