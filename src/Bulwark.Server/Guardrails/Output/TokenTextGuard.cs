using System.Text;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Guardrails.Output;

/// <summary>
/// The output guard applied to a choice's token texts, which <c>logprobs</c> and TGI's token
/// events show beside the content. The chosen tokens' texts stream through one filter of
/// their own: each token shows what that filter releases when it is pushed (empty while text is
/// held back, the redaction where a secret ends), so the token texts join to the guarded
/// content. A token's alternatives (<c>top_logprobs</c>, which include the chosen token) are
/// kept, each passed through the guard alone, once the stream filter has released exactly what
/// the tokens since the last such point give one by one (nothing held back, no secret spanning
/// tokens), and each of those tokens then shows its own guarded text. While the filter holds
/// text the tokens wait (their logprobs come in a later chunk than their text; at most
/// <see cref="MaxUndecided"/> tokens, and the choice's end releases all); when it holds nothing
/// and the released text differs, those tokens were rewritten. Tokens whose text became part of a redaction (or
/// of a blocked ending) show what the filter released (empty, or the redaction where the secret
/// ends) and lose their alternatives, which would spell the secret's pieces. The shown token
/// texts always join to the guarded content.
/// </summary>
public sealed class TokenTextGuard(Func<IOutputFilter?> begin)
{
    /// <summary>Most tokens kept undecided; past it they are released as the filter showed them, without alternatives.</summary>
    public const int MaxUndecided = 64;

    private readonly IOutputFilter _stream = begin() ?? throw new InvalidOperationException("the output guard gave no filter for token texts");
    private readonly StringBuilder _shown = new();
    private readonly StringBuilder _alone = new();
    private readonly List<(GeneratedToken Token, string Shown, string Alone)> _undecided = [];

    /// <summary>Takes <paramref name="token"/>; adds to <paramref name="settled"/> every token whose guarded text and alternatives are now settled.</summary>
    public void Pass(GeneratedToken token, List<GeneratedToken> settled)
    {
        var shown = _stream.Blocked ? "" : _stream.Push(token.Text);
        var alone = Alone(token.Text);
        _undecided.Add((token, shown, alone));
        _shown.Append(shown);
        _alone.Append(alone);
        if (_stream.Blocked) return;
        if (_shown.Equals(_alone.ToString())) Release(settled, safe: true);
        // The filter holds nothing: these tokens are settled, and they differ from their own texts (a redaction).
        else if (_stream.Held == 0 || _undecided.Count >= MaxUndecided) Release(settled, safe: false);
    }

    /// <summary>At the end of the choice: what the filter still held goes to the last token; every token is released.</summary>
    public void Close(List<GeneratedToken>? settled)
    {
        var rest = _stream.Blocked ? "" : _stream.Flush();
        if (settled is null || _undecided.Count == 0) return;
        _shown.Append(rest);
        _undecided[^1] = _undecided[^1] with { Shown = _undecided[^1].Shown + rest };
        Release(settled, safe: !_stream.Blocked && _shown.Equals(_alone.ToString()));
    }

    private void Release(List<GeneratedToken> settled, bool safe)
    {
        // Safe: nothing was held or rewritten across these tokens, so each shows its own guarded text (matching its
        // logprob) and its alternatives, each guarded alone. Otherwise they show what the filter released, no alternatives.
        foreach (var (token, shown, alone) in _undecided)
        {
            settled.Add(token with
            {
                Text = safe ? alone : shown,
                TopLogprobs = token.TopLogprobs is null ? null : safe ? token.TopLogprobs.Select(a => a with { Text = Alone(a.Text) }).ToArray() : [],
            });
        }
        _undecided.Clear();
        _shown.Clear();
        _alone.Clear();
    }

    private string Alone(string text)
    {
        if (text.Length == 0) return text;
        var filter = begin()!;
        return filter.Push(text) + filter.Flush();
    }
}
