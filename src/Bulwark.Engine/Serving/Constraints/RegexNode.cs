namespace Bulwark.Engine.Serving.Constraints;

/// <summary>A parsed regular expression: sets of characters, concatenation, alternation, bounded or unbounded repetition.</summary>
internal abstract record RegexNode
{
    public sealed record Set(CodePointSet Chars) : RegexNode;

    public sealed record Concat(IReadOnlyList<RegexNode> Parts) : RegexNode;

    public sealed record Alternation(IReadOnlyList<RegexNode> Options) : RegexNode;

    public sealed record Repeat(RegexNode Body, int Min, int? Max) : RegexNode;

    public static RegexNode Empty { get; } = new Concat([]);
}
