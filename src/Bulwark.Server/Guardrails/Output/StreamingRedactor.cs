using System.Text;
using System.Text.RegularExpressions;

namespace Bulwark.Server.Guardrails.Output;

/// <summary>
/// Redacts secrets from a stream of text pieces, whatever the piece boundaries. One instance per
/// response; not thread-safe.
/// <para>
/// Hold-back rule: text is released up to the first place a secret could still begin. A secret
/// can only begin at an anchor, so text without one (or without the beginning of one at its very
/// end) is released at once. At an anchor, the decision waits until it is settled: the buffer
/// holds a character the pattern cannot consume, or as many characters as its longest match
/// plus the one its lookahead reads. A settled decision is the one the whole text would give, so
/// streaming output equals one-shot output for every way of cutting the text, and the extra
/// latency is bounded by the longest pattern (and is zero outside anchors).
/// </para>
/// </summary>
public sealed class StreamingRedactor
{
    // Characters kept before the release point so lookbehinds see what precedes an anchor.
    private const int Context = 8;
    private const string BlockEnd = "-----END";
    private const int BlockEndLineLimit = 64;

    private readonly SecretRuleSet _rules;
    private readonly OutputGuardMode _mode;
    private char[] _buffer = new char[256];
    private int _length; // chars in _buffer
    private int _released; // [0, _released) has been emitted or swallowed; the rest is pending
    private bool _inBlock;
    private List<string>? _hits;

    public StreamingRedactor(OutputGuardMode mode = OutputGuardMode.Redact, SecretRuleSet? rules = null)
    {
        _mode = mode;
        _rules = rules ?? SecretRuleSet.Default;
    }

    /// <summary>True once a secret was found in <see cref="OutputGuardMode.Block"/> mode; nothing more is emitted.</summary>
    public bool IsBlocked { get; private set; }

    /// <summary>The rule that blocked the stream.</summary>
    public string? BlockedBy { get; private set; }

    /// <summary>Rule ids of every secret found so far, in order (for metrics and the audit record).</summary>
    public IReadOnlyList<string> Hits => _hits ?? (IReadOnlyList<string>)[];

    /// <summary>Characters currently held back (for latency accounting).</summary>
    public int Pending => _length - _released;

    /// <summary>One-shot redaction of a complete text: the same result as streaming it in any pieces.</summary>
    public static string Redact(string text, SecretRuleSet? rules = null)
    {
        var redactor = new StreamingRedactor(OutputGuardMode.Redact, rules);
        var output = new StringBuilder(text.Length);
        redactor.Push(text, output);
        redactor.Flush(output);
        return output.ToString();
    }

    /// <summary>Adds a piece; returns the text that is safe to emit now (possibly empty).</summary>
    public string Push(string piece)
    {
        var output = new StringBuilder();
        Push(piece, output);
        return output.ToString();
    }

    /// <summary>Returns everything still held back, redacted; call once at the end of the stream.</summary>
    public string Flush()
    {
        var output = new StringBuilder();
        Flush(output);
        return output.ToString();
    }

    /// <summary>Adds a piece and appends what is safe to emit now to <paramref name="output"/>.</summary>
    public void Push(ReadOnlySpan<char> piece, StringBuilder output)
    {
        if (IsBlocked) return;
        Append(piece);
        Release(output, final: false);
    }

    public void Flush(StringBuilder output)
    {
        if (IsBlocked) return;
        Release(output, final: true);
    }

    private void Release(StringBuilder output, bool final)
    {
        while (true)
        {
            if (_inBlock && !SwallowBlock(final)) return;
            var text = _buffer.AsSpan(0, _length);
            var at = text[_released..].IndexOfAny(_rules.Anchors);
            if (at < 0)
            {
                var end = final ? _length : _length - _rules.PartialAnchorSuffix(text[_released..]);
                output.Append(text[_released..end]);
                _released = end;
                return;
            }
            at += _released;
            switch (Decide(text, at, final, out var rule, out var secretStart, out var secretEnd))
            {
                case Decision.Undecided:
                    output.Append(text[_released..at]);
                    _released = at;
                    return;
                case Decision.NoMatch:
                    output.Append(text[_released..(at + 1)]);
                    _released = at + 1;
                    break;
                case Decision.Match:
                    (_hits ??= []).Add(rule!.Id);
                    if (_mode == OutputGuardMode.Block)
                    {
                        output.Append(text[_released..at]);
                        IsBlocked = true;
                        BlockedBy = rule.Id;
                        _released = _length;
                        return;
                    }
                    output.Append(text[_released..secretStart]).Append(rule.Replacement);
                    _released = secretEnd;
                    _inBlock = rule.OpensBlock;
                    break;
            }
        }
    }

    private enum Decision { Undecided, NoMatch, Match }

    /// <summary>Longest match of any rule anchored at <paramref name="at"/>, once every such rule is settled.</summary>
    private Decision Decide(ReadOnlySpan<char> text, int at, bool final, out SecretRule? best, out int bestStart, out int bestEnd)
    {
        best = null;
        bestStart = bestEnd = 0;
        foreach (var rule in _rules.Rules)
        {
            if (rule.AnchorLengthAt(text, at) == 0) continue;
            var start = at;
            if (rule.Prefix is not null)
            {
                if (!final && !Settled(text, at, rule.PrefixAlphabet!, rule.PrefixMaxLength)) return Decision.Undecided;
                var prefix = MatchLengthAt(rule.Prefix, text, at);
                if (prefix <= 0) continue;
                start = at + prefix;
            }
            if (!final && !Settled(text, start, rule.SecretAlphabet, rule.SecretMaxLength)) return Decision.Undecided;
            var length = MatchLengthAt(rule.Secret, text, start);
            if (length <= 0 || !rule.Accepts(text.Slice(start, length))) continue;
            if (best is null || start + length > bestEnd)
            {
                best = rule;
                bestStart = start;
                bestEnd = start + length;
            }
        }
        return best is null ? Decision.NoMatch : Decision.Match;
    }

    /// <summary>
    /// A pattern's verdict at <paramref name="from"/> cannot change with more text once the buffer
    /// holds a character outside its alphabet (the match must stop there) or its full reach.
    /// </summary>
    private static bool Settled(ReadOnlySpan<char> text, int from, System.Buffers.SearchValues<char> alphabet, int reach) =>
        text.Length - from >= reach || text[from..].IndexOfAnyExcept(alphabet) >= 0;

    private static int MatchLengthAt(Regex pattern, ReadOnlySpan<char> text, int at)
    {
        foreach (var match in pattern.EnumerateMatches(text, at))
            return match.Index == at ? match.Length : -1;
        return -1;
    }

    /// <summary>Inside a private key block: drops text up to the END line. True when the block closed.</summary>
    private bool SwallowBlock(bool final)
    {
        while (true)
        {
            var pending = _buffer.AsSpan(_released, _length - _released);
            var end = pending.IndexOf(BlockEnd, StringComparison.Ordinal);
            if (end < 0)
            {
                _released = final ? _length : _length - PartialSuffix(pending, BlockEnd);
                return false;
            }
            var afterEnd = pending[(end + BlockEnd.Length)..];
            var close = afterEnd.IndexOf("-----", StringComparison.Ordinal);
            if (close is >= 0 and <= BlockEndLineLimit)
            {
                _released += end + BlockEnd.Length + close + 5;
                _inBlock = false;
                return true;
            }
            if (close < 0 && afterEnd.Length <= BlockEndLineLimit && !final)
            {
                _released += end; // the END line may still be completing
                return false;
            }
            _released += end + BlockEnd.Length; // not a real END line: keep swallowing after it
        }
    }

    private static int PartialSuffix(ReadOnlySpan<char> text, string marker)
    {
        for (var k = Math.Min(marker.Length - 1, text.Length); k > 0; k--)
        {
            if (marker.AsSpan().StartsWith(text[^k..], StringComparison.Ordinal)) return k;
        }
        return 0;
    }

    private void Append(ReadOnlySpan<char> piece)
    {
        if (_length + piece.Length > _buffer.Length)
        {
            // Perf: drop released text (keeping lookbehind context) before growing.
            var keepFrom = Math.Max(0, _released - Context);
            var kept = _length - keepFrom;
            if (kept + piece.Length > _buffer.Length)
            {
                var grown = new char[Math.Max(_buffer.Length * 2, kept + piece.Length)];
                _buffer.AsSpan(keepFrom, kept).CopyTo(grown);
                _buffer = grown;
            }
            else
            {
                _buffer.AsSpan(keepFrom, kept).CopyTo(_buffer);
            }
            _length = kept;
            _released -= keepFrom;
        }
        piece.CopyTo(_buffer.AsSpan(_length));
        _length += piece.Length;
    }
}
