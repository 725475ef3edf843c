namespace Bulwark.Server.Backends;

/// <summary>
/// A request's prompt as the backend will run it. <see cref="IsExact"/>: the backend counted
/// <see cref="TokenCount"/> with the model's own tokenizer (and <see cref="TokenIds"/> holds the
/// tokens); otherwise the count is an estimate the token quota reserves from until the backend
/// reports the real usage.
/// </summary>
public sealed record PreparedPrompt(int TokenCount, bool IsExact, int[]? TokenIds = null)
{
    public static PreparedPrompt Exact(int[] tokenIds) => new(tokenIds.Length, true, tokenIds);
}
