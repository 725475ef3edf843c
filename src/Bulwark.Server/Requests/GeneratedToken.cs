using Bulwark.Engine.Serving.Sampling;

namespace Bulwark.Server.Requests;

/// <summary>
/// One generated token as <c>logprobs</c> and TGI's token events show it: its id, its own text
/// (empty while a multi-byte character is incomplete), its log-probability and the alternatives
/// asked for. <see cref="TokenId"/> is -1 on a closing entry that carries no token, and
/// <see cref="UnknownId"/> for a token an upstream engine reported without its id (the OpenAI
/// protocol gives token texts, not ids).
/// </summary>
public readonly record struct GeneratedToken(int TokenId, string Text, float Logprob = 0f, TokenLogprob[]? TopLogprobs = null)
{
    /// <summary>The id of a token (or an alternative's <see cref="TokenLogprob.TokenId"/>) whose engine did not say it.</summary>
    public const int UnknownId = -2;

    public bool IsClosingOnly => TokenId == -1;

    /// <summary>The id as TGI's wire writes it: -1 when unknown (TGI's own clients read any integer).</summary>
    public int WireId => WireIdOf(TokenId);

    /// <summary>A token's or an alternative's id as TGI's wire writes it.</summary>
    public static int WireIdOf(int tokenId) => tokenId == UnknownId ? -1 : tokenId;
}
