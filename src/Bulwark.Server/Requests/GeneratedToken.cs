using Bulwark.Engine.Serving.Sampling;

namespace Bulwark.Server.Requests;

/// <summary>
/// One generated token as <c>logprobs</c> and TGI's token events show it: its id, its own text
/// (empty while a multi-byte character is incomplete), its log-probability and the alternatives
/// asked for. <see cref="TokenId"/> is -1 on a closing entry that carries no token.
/// </summary>
public readonly record struct GeneratedToken(int TokenId, string Text, float Logprob = 0f, TokenLogprob[]? TopLogprobs = null)
{
    public bool IsClosingOnly => TokenId < 0;
}
