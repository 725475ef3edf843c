using System.Text;

namespace Bulwark.Engine.Tokenizers;

/// <summary>A stretch of input: raw text to tokenize (<see cref="TokenId"/> = -1) or one matched special token.</summary>
internal readonly record struct Fragment(int Start, int Length, int TokenId)
{
    public bool IsText => TokenId < 0;
}

/// <summary>
/// Cuts added and special tokens out of the input before the model's algorithm sees it, the
/// way llama.cpp's <c>tokenizer_st_partition</c> does: tokens are tried longest text first,
/// each claiming every occurrence left to right in the text that is still unclaimed.
/// User-defined tokens are always matched; control and unknown tokens only with parseSpecial,
/// which is what keeps "&lt;|im_start|&gt;" typed by a user from becoming a chat marker.
/// </summary>
internal sealed class SpecialTokenSplitter
{
    private readonly record struct Candidate(int Id, char[] Chars, byte[] Utf8, bool NeedsParseSpecial);

    private readonly Candidate[] _candidates;
    private readonly bool _anyAlwaysMatched;

    public SpecialTokenSplitter(IReadOnlyList<string> texts, IReadOnlyList<TokenType> types)
    {
        var list = new List<Candidate>();
        for (var id = 0; id < texts.Count; id++)
        {
            var type = types[id];
            if (type is not (TokenType.Control or TokenType.UserDefined or TokenType.Unknown) || texts[id].Length == 0) continue;
            list.Add(new Candidate(id, texts[id].ToCharArray(), Encoding.UTF8.GetBytes(texts[id]), type != TokenType.UserDefined));
        }
        // Stable: equal lengths keep id order, so the result does not depend on sort internals.
        _candidates = [.. list.OrderByDescending(c => c.Utf8.Length).ThenBy(c => c.Id)];
        _anyAlwaysMatched = _candidates.Any(c => !c.NeedsParseSpecial);
    }

    /// <summary>Splits UTF-16 text; appends fragments in order to <paramref name="fragments"/>.</summary>
    public void Split(ReadOnlySpan<char> text, bool parseSpecial, List<Fragment> fragments) =>
        Split(text, parseSpecial, fragments, static c => c.Chars);

    /// <summary>Splits UTF-8 bytes; appends fragments in order to <paramref name="fragments"/>.</summary>
    public void Split(ReadOnlySpan<byte> text, bool parseSpecial, List<Fragment> fragments) =>
        Split(text, parseSpecial, fragments, static c => c.Utf8);

    private void Split<T>(ReadOnlySpan<T> text, bool parseSpecial, List<Fragment> fragments, Func<Candidate, T[]> form)
        where T : IEquatable<T>
    {
        var start = fragments.Count;
        if (text.Length > 0) fragments.Add(new Fragment(0, text.Length, -1));
        if (text.Length == 0 || (!parseSpecial && !_anyAlwaysMatched)) return;

        List<Fragment>? scratch = null;
        foreach (var candidate in _candidates)
        {
            if (candidate.NeedsParseSpecial && !parseSpecial) continue;
            var needle = form(candidate);
            if (text.IndexOf(needle) < 0) continue; // Perf: one vectorised scan rejects most tokens

            scratch ??= new List<Fragment>();
            scratch.Clear();
            for (var f = start; f < fragments.Count; f++)
            {
                var fragment = fragments[f];
                if (!fragment.IsText) { scratch.Add(fragment); continue; }
                var offset = fragment.Start;
                var end = fragment.Start + fragment.Length;
                while (offset < end)
                {
                    var at = text[offset..end].IndexOf(needle);
                    if (at < 0) break;
                    if (at > 0) scratch.Add(new Fragment(offset, at, -1));
                    scratch.Add(new Fragment(offset + at, needle.Length, candidate.Id));
                    offset += at + needle.Length;
                }
                if (offset < end) scratch.Add(new Fragment(offset, end - offset, -1));
            }
            fragments.RemoveRange(start, fragments.Count - start);
            fragments.AddRange(scratch);
        }
    }
}
