namespace Bulwark.Engine.Serving.Constraints;

/// <summary>
/// A context-free grammar over bytes, compiled for matching: every rule is a list of alternatives,
/// every alternative a sequence of items, each a byte set (terminal) or a rule (nonterminal). Items
/// are numbered globally so a matcher's stack frame is one integer; an alternative ends with an
/// <see cref="End"/> item. Immutable and shared: a compiled constraint is safe to reuse across
/// requests and threads (the matching state lives in <see cref="GrammarMatcher"/>). Every rule can
/// derive a finite string (unproductive alternatives are removed when built), so a live matcher
/// state can always be completed.
/// </summary>
public sealed class Grammar
{
    /// <summary>Marks the end of an alternative in <see cref="ItemSymbol"/>.</summary>
    internal const int End = int.MinValue;

    internal Grammar(int[] itemSymbol, int[][] ruleFirstItems, ByteSet[] classes, int start, string description)
    {
        ItemSymbol = itemSymbol;
        RuleFirstItems = ruleFirstItems;
        Classes = classes;
        Start = start;
        Description = description;
    }

    /// <summary>Per item: a rule id (≥ 0), a terminal class as <c>~class</c> (&lt; 0), or <see cref="End"/>.</summary>
    internal int[] ItemSymbol { get; }

    /// <summary>Per rule: the first item of each alternative.</summary>
    internal int[][] RuleFirstItems { get; }

    internal ByteSet[] Classes { get; }

    internal int Start { get; }

    /// <summary>What the grammar stands for, for logs and errors (<c>json_schema</c>, <c>regex</c>…).</summary>
    public string Description { get; }

    public int RuleCount => RuleFirstItems.Length;

    public int ItemCount => ItemSymbol.Length;

    /// <summary>Whether the whole of <paramref name="utf8"/> is a sentence of the grammar (a slow, obviously-correct check).</summary>
    public bool Matches(ReadOnlySpan<byte> utf8) => Run(utf8).Accepting;

    /// <summary>Whether <paramref name="utf8"/> can be continued into a sentence of the grammar.</summary>
    public bool IsPrefix(ReadOnlySpan<byte> utf8) => !Run(utf8).IsDead;

    private MatcherState Run(ReadOnlySpan<byte> utf8)
    {
        var matcher = new GrammarMatcher(this);
        var state = matcher.Start;
        foreach (var b in utf8)
        {
            state = matcher.Advance(state, b);
            if (state.IsDead) break;
        }
        return state;
    }
}
