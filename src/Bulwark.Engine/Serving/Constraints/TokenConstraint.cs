namespace Bulwark.Engine.Serving.Constraints;

/// <summary>
/// A grammar over one model's vocabulary: the token masks and state updates a constrained sequence
/// needs at each step. A mask is the set of tokens whose bytes keep the output a prefix of some
/// sentence; it is computed by walking the vocabulary trie with the matcher (a subtree the matcher
/// refuses is skipped whole) and kept on the state, so a state met again (inside a string, at the same
/// place of a structure, in another choice or request sharing this object) costs a lookup. Mask memory
/// is bounded (<see cref="MaxMaskBytes"/>). Single-threaded: used only on the engine's step loop, where requests sharing a grammar share one.
/// </summary>
public sealed class TokenConstraint
{
    /// <summary>Memory for remembered masks; past it they are dropped and recomputed as needed.</summary>
    public const long MaxMaskBytes = 16L << 20;

    private readonly List<MatcherState> _masked = [];
    private MatcherState?[] _walk = [];
    private (MatcherState State, ulong[] Mask, int Count)? _first;

    /// <param name="maxSharedStates">States after which <see cref="IsWorn"/> says to start afresh.</param>
    public TokenConstraint(Grammar grammar, TokenVocabulary vocabulary, int maxSharedStates = DefaultMaxSharedStates)
    {
        _maxSharedStates = maxSharedStates;
        Grammar = grammar;
        Vocabulary = vocabulary;
        Matcher = new GrammarMatcher(grammar);
    }

    public Grammar Grammar { get; }

    public TokenVocabulary Vocabulary { get; }

    public GrammarMatcher Matcher { get; }

    /// <summary>States past which a server should start a fresh constraint for new requests rather than grow this one's memo further (about 2 KiB each).</summary>
    public const int DefaultMaxSharedStates = 20_000;

    private readonly int _maxSharedStates;

    /// <summary>The memo has grown past its bound: sequences using it go on, new requests should get a fresh one.</summary>
    public bool IsWorn => Matcher.StatesMade > _maxSharedStates;

    public MatcherState Start => Matcher.Start;

    /// <summary>Masks computed by a walk (not found on a state), for the benchmark and tests.</summary>
    public long MaskWalks { get; private set; }

    /// <summary>The state after <paramref name="token"/>; <paramref name="first"/>: the token is the output's first.</summary>
    public MatcherState Advance(MatcherState state, int token, bool first)
    {
        var bytes = first ? Vocabulary.FirstBytesOf(token) : Vocabulary.BytesOf(token);
        if (bytes.IsEmpty && Vocabulary.BytesOf(token) is null) return Matcher.Dead;
        return Matcher.Step(state, bytes);
    }

    /// <summary>The allowed text tokens in <paramref name="state"/> (end of sequence is the engine's to add when the state accepts) and how many there are.</summary>
    public ulong[] MaskOf(MatcherState state, bool first, out int count)
    {
        if (first && Vocabulary.StripsFirstSpace)
        {
            // The first token's bytes differ (its leading space is dropped): checked token by token, once per state.
            if (_first is { } f && ReferenceEquals(f.State, state))
            {
                count = f.Count;
                return f.Mask;
            }
            var m = new ulong[Vocabulary.MaskWords];
            count = FillNaive(state, m, first: true);
            _first = (state, m, count);
            return m;
        }
        if (state.Mask is { } known)
        {
            count = state.MaskCount;
            return known;
        }
        var mask = new ulong[Vocabulary.MaskWords];
        count = Fill(state, mask);
        MaskWalks++;
        if ((long)(_masked.Count + 1) * mask.Length * 8 > MaxMaskBytes)
        {
            foreach (var s in _masked) s.Mask = null;
            _masked.Clear();
        }
        state.Mask = mask;
        state.MaskCount = count;
        _masked.Add(state);
        return mask;
    }

    /// <summary>The trie walk: each node advances its parent's state by one byte (memoized), a dead one skips its subtree.</summary>
    public int Fill(MatcherState state, Span<ulong> mask)
    {
        mask.Clear();
        var v = Vocabulary;
        if (state.Nodes.Length == 0) return 0;
        if (_walk.Length <= v.MaxDepth) _walk = new MatcherState?[v.MaxDepth + 1];
        var walk = _walk;
        walk[0] = state;
        var label = v.Label;
        var depth = v.Depth;
        var end = v.SubtreeEnd;
        var count = 0;
        for (var i = 0; i < label.Length;)
        {
            var d = depth[i];
            var next = Matcher.Step(walk[d - 1]!, label[i]);
            if (next.IsDead)
            {
                i = end[i];
                continue;
            }
            walk[d] = next;
            var n = v.TokenCount[i];
            if (n > 0)
            {
                var first = v.FirstToken[i];
                for (var t = 0; t < n; t++)
                {
                    var id = v.Tokens[first + t];
                    mask[id >> 6] |= 1UL << (id & 63);
                }
                count += n;
            }
            i++;
        }
        return count;
    }

    /// <summary>The slow twin of <see cref="Fill"/>: every token's bytes run through the matcher from scratch, nothing memoized.</summary>
    public int FillNaive(MatcherState state, Span<ulong> mask, bool first = false)
    {
        mask.Clear();
        var count = 0;
        for (var id = 0; id < Vocabulary.Size; id++)
        {
            if (Vocabulary.BytesOf(id) is null) continue;
            var bytes = first ? Vocabulary.FirstBytesOf(id) : Vocabulary.BytesOf(id);
            if (bytes.IsEmpty) continue;
            var s = state;
            foreach (var b in bytes)
            {
                s = Matcher.Advance(s, b);
                if (s.IsDead) break;
            }
            if (s.IsDead) continue;
            mask[id >> 6] |= 1UL << (id & 63);
            count++;
        }
        return count;
    }

    public static bool Allowed(ReadOnlySpan<ulong> mask, int id) => (mask[id >> 6] >> (id & 63) & 1) != 0;
}
