using System.Runtime.InteropServices;

namespace Bulwark.Engine.Tokenizers.ByteLevel;

/// <summary>
/// Merge rules keyed by the pair of token ids they join: rank (lower merges first) and the id
/// of the joined token. Ids instead of strings keep the merge loop free of allocation.
/// </summary>
internal sealed class BpeMergeTable
{
    [StructLayout(LayoutKind.Auto)]
    private readonly record struct Rule(int Rank, int Result);

    private readonly Dictionary<long, Rule> _rules;

    public BpeMergeTable(int capacity) => _rules = new Dictionary<long, Rule>(capacity);

    public int Count => _rules.Count;

    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>Adds a rule; a pair already present keeps its first (lowest) rank, as HF and llama.cpp do.</summary>
    public void Add(int left, int right, int rank, int result) => _rules.TryAdd(Key(left, right), new Rule(rank, result));

    /// <summary>The rank of merging <paramref name="left"/> and <paramref name="right"/>, or int.MaxValue when they never merge.</summary>
    public int RankOf(int left, int right, out int result)
    {
        if (_rules.TryGetValue(Key(left, right), out var rule))
        {
            result = rule.Result;
            return rule.Rank;
        }
        result = -1;
        return int.MaxValue;
    }
}
