namespace Bulwark.Engine.Tools;

/// <summary>
/// Which characters of the text pushed into a tool-call reader became content and which belonged to a call (markers,
/// layout, names, arguments, whitespace dropped around calls), as runs in push order, each decided once. What a caller
/// needs to tell content tokens from a call's tokens, for <c>logprobs</c> (OpenAI lists content tokens only).
/// The runs taken so far cover exactly the characters decided so far; at the end of the output every character is decided.
/// </summary>
public sealed class ContentRuns
{
    private readonly List<(bool Content, int Length)> _runs = [];

    internal void Add(bool content, int length)
    {
        if (length <= 0) return;
        if (_runs.Count > 0 && _runs[^1].Content == content) _runs[^1] = (content, _runs[^1].Length + length);
        else _runs.Add((content, length));
    }

    /// <summary>Appends the runs decided since the last take to <paramref name="into"/>, in order.</summary>
    public void TakeInto(List<(bool Content, int Length)> into)
    {
        into.AddRange(_runs);
        _runs.Clear();
    }
}
