using Bulwark.Engine.Tools;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Spine;

/// <summary>
/// The logprobs of a choice whose text is read for tool calls. OpenAI lists content tokens only (<c>logprobs.content</c>;
/// a call's tokens have none), so each token waits until the reader has decided what its characters were, and is listed
/// when any of them became content: a marker, a call's JSON and the whitespace dropped around calls are not listed. The
/// tokens' texts (through the token-text guard where the output guard runs) join to the text the reader is pushed, so
/// walking their lengths against the reader's <see cref="ContentRuns"/> lines them up. A token still undecided when the
/// choice ends is listed, as every token was before calls were read.
/// </summary>
internal sealed class ContentTokens(ContentRuns runs)
{
    private readonly Queue<GeneratedToken> _waiting = new();
    private readonly List<(bool Content, int Length)> _taken = [];
    private readonly Queue<(bool Content, int Length)> _runs = new();
    private int _used;
    private int _available;

    /// <summary>Moves <paramref name="pending"/> into the wait, then adds to <paramref name="listed"/> the content tokens among those now decided, in order.</summary>
    /// <param name="final">The choice ended: every token is decided (or listed).</param>
    public void Sort(List<GeneratedToken> pending, List<GeneratedToken> listed, bool final)
    {
        foreach (var token in pending) _waiting.Enqueue(token);
        pending.Clear();
        runs.TakeInto(_taken);
        foreach (var run in _taken)
        {
            _runs.Enqueue(run);
            _available += run.Length;
        }
        _taken.Clear();
        while (_waiting.Count > 0)
        {
            var length = _waiting.Peek().Text.Length;
            // A token without text goes with the character after it.
            if (_available < Math.Max(length, 1))
            {
                if (!final) return;
                listed.Add(_waiting.Dequeue());
                continue;
            }
            var token = _waiting.Dequeue();
            if (length == 0 ? _runs.Peek().Content : Consume(length)) listed.Add(token);
        }
    }

    /// <summary>Consumes <paramref name="length"/> decided characters; true when any of them is content.</summary>
    private bool Consume(int length)
    {
        var content = false;
        _available -= length;
        while (length > 0)
        {
            var (isContent, runLength) = _runs.Peek();
            var take = Math.Min(length, runLength - _used);
            content |= isContent;
            length -= take;
            _used += take;
            if (_used < runLength) continue;
            _runs.Dequeue();
            _used = 0;
        }
        return content;
    }
}
