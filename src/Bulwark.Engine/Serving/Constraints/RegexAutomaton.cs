namespace Bulwark.Engine.Serving.Constraints;

/// <summary>
/// A regular expression compiled to grammar rules: Thompson NFA over UTF-8 bytes, subset construction
/// to a DFA with a cap on its states and on the work done (so a pattern that would blow up is refused
/// in bounded time), then one rule per DFA state (right-linear, so matching never grows a stack).
/// In <see cref="Mode.JsonString"/> the characters are spelt as JSON string content: <c>"</c>, <c>\</c>
/// and control characters by their escapes.
/// </summary>
internal sealed class RegexAutomaton
{
    public enum Mode { Raw, JsonString }

    private const int WorkPerDfaState = 1 << 16;

    private readonly List<List<(byte Lo, byte Hi, int To)>> _moves = [];
    private readonly List<List<int>> _eps = [];
    private readonly Mode _mode;
    private readonly string _path;
    private readonly ConstraintLimits _limits;
    private readonly int _maxNfaStates;

    private RegexAutomaton(Mode mode, string path, ConstraintLimits limits)
    {
        _mode = mode;
        _path = path;
        _limits = limits;
        _maxNfaStates = limits.MaxDfaStates * 32;
    }

    /// <summary>
    /// A rule matching what <paramref name="pattern"/> matches as a whole (full match). With
    /// <paramref name="search"/> (JSON Schema's <c>pattern</c>), the pattern may match anywhere unless anchored with ^/$.
    /// </summary>
    public static int Compile(GrammarBuilder builder, string pattern, string path, ConstraintLimits limits, Mode mode, bool search)
    {
        if (pattern.Length > limits.MaxRegexLength)
            throw new ConstraintException(path, "pattern", $"{path}: the regular expression must be at most {limits.MaxRegexLength} characters; got {pattern.Length}");
        var node = RegexParser.Parse(pattern, path, limits.MaxRepeat, out var startAnchored, out var endAnchored);
        if (search)
        {
            var any = new RegexNode.Repeat(new RegexNode.Set(CodePointSet.Any), 0, null);
            node = new RegexNode.Concat([.. startAnchored ? Array.Empty<RegexNode>() : [any], node, .. endAnchored ? Array.Empty<RegexNode>() : [any]]);
        }
        var nfa = new RegexAutomaton(mode, path, limits);
        var start = nfa.NewState();
        var accept = nfa.Build(node, start);
        return nfa.ToGrammar(builder, start, accept);
    }

    private ConstraintException TooComplex(string what) =>
        new(_path, "pattern", $"{_path}: the regular expression is too complex to enforce: {what}");

    private int NewState()
    {
        if (_moves.Count >= _maxNfaStates) throw TooComplex($"its automaton needs more than {_maxNfaStates} NFA states");
        _moves.Add([]);
        _eps.Add([]);
        return _moves.Count - 1;
    }

    /// <summary>Adds <paramref name="node"/> starting at <paramref name="from"/>; returns its end state.</summary>
    private int Build(RegexNode node, int from)
    {
        switch (node)
        {
            case RegexNode.Set set:
            {
                var end = NewState();
                AddSet(set.Chars, from, end);
                return end;
            }
            case RegexNode.Concat concat:
            {
                var at = from;
                foreach (var part in concat.Parts) at = Build(part, at);
                return at;
            }
            case RegexNode.Alternation alt:
            {
                var end = NewState();
                foreach (var option in alt.Options)
                {
                    var s = NewState();
                    _eps[from].Add(s);
                    _eps[Build(option, s)].Add(end);
                }
                return end;
            }
            case RegexNode.Repeat rep:
            {
                var at = from;
                for (var i = 0; i < rep.Min; i++) at = Build(rep.Body, at);
                if (rep.Max is null)
                {
                    var loop = NewState();
                    _eps[at].Add(loop);
                    var bodyEnd = Build(rep.Body, loop);
                    _eps[bodyEnd].Add(loop);
                    return loop;
                }
                var end = NewState();
                _eps[at].Add(end);
                for (var i = rep.Min; i < rep.Max; i++)
                {
                    at = Build(rep.Body, at);
                    _eps[at].Add(end);
                }
                return end;
            }
            default:
                throw new InvalidOperationException(node.GetType().Name);
        }
    }

    private void AddSet(CodePointSet chars, int from, int to)
    {
        if (_mode == Mode.JsonString)
        {
            // In a JSON string, '"', '\' and controls must be escaped; each is spelt one way.
            var specials = CodePointSet.Of((0, 0x1F), ('"', '"'), ('\\', '\\'));
            foreach (var (lo, hi) in chars.Ranges)
                for (var c = lo; c <= Math.Min(hi, 0x5C); c++)
                    if (c < 0x20 || c == '"' || c == '\\') AddBytes(System.Text.Encoding.ASCII.GetBytes(Escape(c)), from, to);
            chars = Intersect(chars, specials.Complement());
        }
        foreach (var seq in chars.Utf8Sequences())
        {
            var at = from;
            for (var i = 0; i < seq.Length; i++)
            {
                var next = i == seq.Length - 1 ? to : NewState();
                _moves[at].Add((seq[i].Lo, seq[i].Hi, next));
                at = next;
            }
        }
    }

    private static CodePointSet Intersect(CodePointSet a, CodePointSet b) => a.Complement().Union(b.Complement()).Complement();

    private static string Escape(int c) => c switch
    {
        '"' => "\\\"",
        '\\' => "\\\\",
        '\n' => "\\n",
        '\t' => "\\t",
        '\r' => "\\r",
        '\b' => "\\b",
        '\f' => "\\f",
        _ => $"\\u{c:x4}",
    };

    private void AddBytes(byte[] bytes, int from, int to)
    {
        var at = from;
        for (var i = 0; i < bytes.Length; i++)
        {
            var next = i == bytes.Length - 1 ? to : NewState();
            _moves[at].Add((bytes[i], bytes[i], next));
            at = next;
        }
    }

    private int[] Closure(IEnumerable<int> states, ref long work)
    {
        var seen = new HashSet<int>();
        var stack = new Stack<int>(states);
        while (stack.Count > 0)
        {
            var s = stack.Pop();
            if (!seen.Add(s)) continue;
            work++;
            foreach (var e in _eps[s]) stack.Push(e);
        }
        var result = seen.ToArray();
        Array.Sort(result);
        return result;
    }

    private int ToGrammar(GrammarBuilder b, int start, int accept)
    {
        long work = 0;
        var budget = (long)_limits.MaxDfaStates * WorkPerDfaState;
        var ids = new Dictionary<int[], int>(ArrayComparer.Instance);
        var sets = new List<int[]>();
        var first = Closure([start], ref work);
        ids[first] = 0;
        sets.Add(first);
        var transitions = new List<Dictionary<int, ByteSet>>();
        var buckets = new List<int>[256];
        for (var i = 0; i < 256; i++) buckets[i] = [];
        for (var d = 0; d < sets.Count; d++)
        {
            foreach (var bucket in buckets) bucket.Clear();
            foreach (var s in sets[d])
                foreach (var (lo, hi, to) in _moves[s])
                {
                    work += hi - lo + 1;
                    for (var x = lo; x <= hi; x++) buckets[x].Add(to);
                }
            var byTarget = new Dictionary<int, ByteSet>();
            for (var x = 0; x < 256; x++)
            {
                if (buckets[x].Count == 0) continue;
                var target = Closure(buckets[x], ref work);
                if (!ids.TryGetValue(target, out var t))
                {
                    if (sets.Count >= _limits.MaxDfaStates) throw TooComplex($"its automaton needs more than {_limits.MaxDfaStates} states");
                    t = sets.Count;
                    ids[target] = t;
                    sets.Add(target);
                }
                byTarget[t] = byTarget.TryGetValue(t, out var set) ? set.Union(ByteSet.Of((byte)x)) : ByteSet.Of((byte)x);
            }
            transitions.Add(byTarget);
            if (work > budget) throw TooComplex($"building its automaton takes more than {budget} steps");
        }
        var rules = new int[sets.Count];
        for (var d = 0; d < sets.Count; d++) rules[d] = b.Rule();
        for (var d = 0; d < sets.Count; d++)
        {
            if (Array.BinarySearch(sets[d], accept) >= 0) b.Alt(rules[d]);
            foreach (var (target, set) in transitions[d]) b.Alt(rules[d], b.Bytes(set), rules[target]);
        }
        return rules[0];
    }

    private sealed class ArrayComparer : IEqualityComparer<int[]>
    {
        public static readonly ArrayComparer Instance = new();

        public bool Equals(int[]? x, int[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(int[] obj)
        {
            var h = new HashCode();
            foreach (var v in obj) h.Add(v);
            return h.ToHashCode();
        }
    }
}
