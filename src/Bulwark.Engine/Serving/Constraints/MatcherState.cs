namespace Bulwark.Engine.Serving.Constraints;

/// <summary>
/// Where a <see cref="GrammarMatcher"/> stands after some bytes: the set of parse stacks still alive
/// (each an interned node whose top item is a terminal) and whether the bytes so far are a whole
/// sentence. Immutable as far as the language goes; it also carries the matcher's memo of its
/// transitions and, once computed, its token mask, so a state met again costs a lookup.
/// </summary>
public sealed class MatcherState
{
    internal MatcherState(int[] nodes, bool accepting)
    {
        Nodes = nodes;
        Accepting = accepting;
        var hash = new HashCode();
        hash.Add(accepting);
        foreach (var n in nodes) hash.Add(n);
        Hash = hash.ToHashCode();
    }

    /// <summary>Stack tops, sorted, distinct.</summary>
    internal int[] Nodes { get; }

    internal int Hash { get; }

    /// <summary>The bytes so far form a complete value: end of sequence may come here.</summary>
    public bool Accepting { get; }

    /// <summary>No continuation and not complete: the bytes are not a prefix of any sentence.</summary>
    public bool IsDead => Nodes.Length == 0 && !Accepting;

    /// <summary>No byte can follow: only end of sequence may come.</summary>
    public bool IsFinal => Nodes.Length == 0 && Accepting;

    /// <summary>Memo of <see cref="GrammarMatcher.Step"/> by byte (allocated on first use).</summary>
    internal MatcherState?[]? Next;

    /// <summary>The allowed-token bitset in this state, once a <see cref="TokenMasker"/> computed it.</summary>
    internal ulong[]? Mask;

    internal int MaskCount;

    internal bool SameAs(MatcherState other) => Hash == other.Hash && Accepting == other.Accepting && Nodes.AsSpan().SequenceEqual(other.Nodes);
}
