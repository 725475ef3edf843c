namespace Bulwark.Engine.Serving.Constraints;

/// <summary>
/// A byte-at-a-time recogniser for a <see cref="Grammar"/>: a nondeterministic pushdown automaton
/// whose configurations are parse stacks, kept as hash-consed linked nodes (item, parent) so that
/// copying a state is copying a reference and two equal stacks are one integer. A nonterminal in tail
/// position replaces its frame instead of pushing one, so right recursion (repetition) never grows a
/// stack. <see cref="Advance"/> recomputes a transition from the grammar (the slow twin);
/// <see cref="Step"/> memoizes it on the state, which makes the token-mask walk a chain of array
/// lookups once a state has been seen. Not thread-safe: one matcher serves one thread (the engine's
/// step loop), and states belong to the matcher that made them.
/// </summary>
public sealed class GrammarMatcher
{
    /// <summary>Frames one stack may hold. Compiled grammars bound their own nesting, so this only guards against a pathological one.</summary>
    public const int MaxStackDepth = 2048;

    /// <summary>Distinct states remembered for reuse; past it the table starts over (states already handed out stay valid).</summary>
    public const int MaxInternedStates = 1 << 16;

    private const int Bottom = 0;

    private readonly Grammar _grammar;
    private readonly Dictionary<long, int> _nodeIds = [];
    private readonly Dictionary<MatcherState, MatcherState> _states = new(StateComparer.Instance);
    private int[] _nodeItem = new int[256];
    private int[] _nodeParent = new int[256];
    private int[] _nodeDepth = new int[256];
    private int[] _visited = new int[256];
    private int _nodeCount = 1; // node 0 is the empty stack
    private int _stamp;
    private readonly Stack<int> _work = new();
    private readonly List<int> _tops = [];
    private bool _accepting;

    public GrammarMatcher(Grammar grammar)
    {
        _grammar = grammar;
        Dead = new MatcherState([], false);
        Begin();
        foreach (var first in grammar.RuleFirstItems[grammar.Start]) Close(Continue(first, Bottom));
        Start = Finish();
    }

    public Grammar Grammar => _grammar;

    /// <summary>The state before any byte.</summary>
    public MatcherState Start { get; }

    /// <summary>The one dead state (no continuation, not complete).</summary>
    public MatcherState Dead { get; }

    /// <summary>Nodes interned so far (a measure of the matcher's memory).</summary>
    public int NodeCount => _nodeCount;

    /// <summary>Distinct states made so far; each may carry a 256-entry transition memo, so this measures the matcher's memory too.</summary>
    public long StatesMade { get; private set; }

    /// <summary>The state after <paramref name="b"/>, memoized on <paramref name="state"/>.</summary>
    public MatcherState Step(MatcherState state, byte b)
    {
        var next = state.Next ??= new MatcherState?[256];
        return next[b] ??= Advance(state, b);
    }

    /// <summary>The state after the bytes of <paramref name="bytes"/>, memoized; <see cref="Dead"/> as soon as one is refused.</summary>
    public MatcherState Step(MatcherState state, ReadOnlySpan<byte> bytes)
    {
        foreach (var b in bytes)
        {
            state = Step(state, b);
            if (state.IsDead) return state;
        }
        return state;
    }

    /// <summary>The state after <paramref name="b"/>, computed from the grammar (no memo is read).</summary>
    public MatcherState Advance(MatcherState state, byte b)
    {
        if (state.Nodes.Length == 0) return Dead;
        Begin();
        var symbols = _grammar.ItemSymbol;
        var classes = _grammar.Classes;
        foreach (var node in state.Nodes)
        {
            var item = _nodeItem[node];
            if (classes[~symbols[item]].Contains(b)) Close(Continue(item + 1, _nodeParent[node]));
        }
        return Finish();
    }

    private void Begin()
    {
        _stamp++;
        _tops.Clear();
        _accepting = false;
    }

    private MatcherState Finish()
    {
        if (_tops.Count == 0 && !_accepting) return Dead;
        _tops.Sort();
        var state = new MatcherState([.. _tops], _accepting);
        if (_states.TryGetValue(state, out var known)) return known;
        if (_states.Count >= MaxInternedStates) _states.Clear();
        _states.Add(state, state);
        StatesMade++;
        return state;
    }

    /// <summary>Expands nonterminals on top of <paramref name="start"/> until every stack shows a terminal (or is empty: accept).</summary>
    private void Close(int start)
    {
        if (start < 0) return;
        var symbols = _grammar.ItemSymbol;
        _work.Push(start);
        while (_work.Count > 0)
        {
            var node = _work.Pop();
            if (_visited[node] == _stamp) continue;
            _visited[node] = _stamp;
            if (node == Bottom)
            {
                _accepting = true;
                continue;
            }
            var item = _nodeItem[node];
            var symbol = symbols[item];
            if (symbol < 0)
            {
                _tops.Add(node);
                continue;
            }
            var ret = Continue(item + 1, _nodeParent[node]);
            if (ret < 0) continue;
            foreach (var first in _grammar.RuleFirstItems[symbol])
            {
                var child = Continue(first, ret);
                if (child >= 0) _work.Push(child);
            }
        }
    }

    /// <summary>The stack that goes on at <paramref name="item"/> over <paramref name="parent"/>: the parent itself when the item ends its alternative (tail position); -1 when too deep.</summary>
    private int Continue(int item, int parent)
    {
        if (_grammar.ItemSymbol[item] == Grammar.End) return parent;
        var key = ((long)item << 32) | (uint)parent;
        if (_nodeIds.TryGetValue(key, out var id)) return id;
        var depth = _nodeDepth[parent] + 1;
        if (depth > MaxStackDepth) return -1;
        if (_nodeCount == _nodeItem.Length)
        {
            var size = _nodeCount * 2;
            Array.Resize(ref _nodeItem, size);
            Array.Resize(ref _nodeParent, size);
            Array.Resize(ref _nodeDepth, size);
            Array.Resize(ref _visited, size);
        }
        id = _nodeCount++;
        _nodeItem[id] = item;
        _nodeParent[id] = parent;
        _nodeDepth[id] = depth;
        _nodeIds.Add(key, id);
        return id;
    }

    private sealed class StateComparer : IEqualityComparer<MatcherState>
    {
        public static readonly StateComparer Instance = new();

        public bool Equals(MatcherState? x, MatcherState? y) => x!.SameAs(y!);

        public int GetHashCode(MatcherState obj) => obj.Hash;
    }
}
