using Bulwark.Engine.Tokenizers;

namespace Bulwark.Engine.Serving.Constraints;

/// <summary>
/// The model's vocabulary as byte strings, for token masks: every token a constraint may allow, with
/// the bytes it adds to the output (<see cref="ITokenizer.TokenBytes"/>, so byte-level and byte-fallback
/// tokens that split a UTF-8 character are bytes like any other), and a prefix trie over them laid out
/// in preorder (a node's subtree is the index range up to <see cref="SubtreeEnd"/>), which a mask walks
/// once per step. Control, unknown and unused tokens, and tokens with no bytes, are never allowed by a
/// constraint (end of sequence is added by the engine in accepting states). Immutable; build once per model.
/// </summary>
public sealed class TokenVocabulary
{
    private readonly byte[]?[] _bytes;

    /// <param name="bytes">Per token id, the bytes it writes, or null for a token a constraint never allows.</param>
    /// <param name="stripsFirstSpace">The detokenizer drops one leading space of the first output token (SentencePiece's added space prefix).</param>
    public TokenVocabulary(byte[]?[] bytes, bool stripsFirstSpace = false)
    {
        _bytes = bytes;
        Size = bytes.Length;
        StripsFirstSpace = stripsFirstSpace;
        MaskWords = (Size + 63) / 64;
        var ids = Enumerable.Range(0, Size).Where(i => bytes[i] is { Length: > 0 }).ToArray();
        Array.Sort(ids, (x, y) =>
        {
            var c = bytes[x].AsSpan().SequenceCompareTo(bytes[y]);
            return c != 0 ? c : x.CompareTo(y);
        });
        var label = new List<byte>();
        var depth = new List<int>();
        var end = new List<int>();
        var firstToken = new List<int>();
        var tokenCount = new List<int>();
        var path = new List<int>();
        byte[] previous = [];
        var order = new List<int>();
        foreach (var id in ids)
        {
            var b = bytes[id]!;
            var common = 0;
            while (common < previous.Length && common < b.Length && previous[common] == b[common]) common++;
            while (path.Count > common)
            {
                end[path[^1]] = label.Count;
                path.RemoveAt(path.Count - 1);
            }
            for (var d = common; d < b.Length; d++)
            {
                path.Add(label.Count);
                label.Add(b[d]);
                depth.Add(d + 1);
                end.Add(-1);
                firstToken.Add(-1);
                tokenCount.Add(0);
            }
            var node = path[b.Length - 1];
            if (firstToken[node] < 0) firstToken[node] = order.Count;
            tokenCount[node]++;
            order.Add(id);
            previous = b;
        }
        foreach (var n in path) end[n] = label.Count;
        Label = [.. label];
        Depth = [.. depth];
        SubtreeEnd = [.. end];
        FirstToken = [.. firstToken];
        TokenCount = [.. tokenCount];
        Tokens = [.. order];
        MaxDepth = depth.Count == 0 ? 0 : depth.Max();
    }

    /// <summary>The tokenizer's vocabulary, padded to the model's <paramref name="modelVocabSize"/> rows (padding is never allowed).</summary>
    /// <param name="controls">Control tokens allowed all the same, as their text (a tool-call marker such as Mistral's <c>[TOOL_CALLS]</c>, which the model writes as one token).</param>
    public static TokenVocabulary From(ITokenizer tokenizer, int modelVocabSize, IReadOnlyCollection<int>? controls = null)
    {
        var bytes = new byte[]?[Math.Max(modelVocabSize, tokenizer.VocabSize)];
        foreach (var id in controls ?? [])
            bytes[id] = System.Text.Encoding.UTF8.GetBytes(tokenizer.TokenText(id));
        for (var id = 0; id < tokenizer.VocabSize; id++)
        {
            if (tokenizer.TypeOf(id) is TokenType.Control or TokenType.Unknown or TokenType.Unused) continue;
            var b = tokenizer.TokenBytes(id);
            if (b.Length > 0) bytes[id] = b.ToArray();
        }
        return new TokenVocabulary(bytes, tokenizer is Tokenizer { AddSpacePrefix: true });
    }

    /// <summary>Rows of the model's logits.</summary>
    public int Size { get; }

    /// <summary>Length of a mask in 64-bit words.</summary>
    public int MaskWords { get; }

    public bool StripsFirstSpace { get; }

    public int MaxDepth { get; }

    /// <summary>The bytes token <paramref name="id"/> writes, or null when a constraint never allows it.</summary>
    public byte[]? BytesOf(int id) => (uint)id < (uint)_bytes.Length ? _bytes[id] : null;

    /// <summary>The bytes a token writes as the first token of an output (the added space prefix dropped where the detokenizer drops it).</summary>
    public ReadOnlySpan<byte> FirstBytesOf(int id)
    {
        var b = BytesOf(id);
        if (b is null) return default;
        return StripsFirstSpace && b[0] == (byte)' ' ? b.AsSpan(1) : b;
    }

    // The trie, in preorder: node i has byte Label[i] at Depth[i] (1 = first byte); its subtree is [i, SubtreeEnd[i]).
    internal byte[] Label { get; }
    internal int[] Depth { get; }
    internal int[] SubtreeEnd { get; }
    internal int[] FirstToken { get; }
    internal int[] TokenCount { get; }
    internal int[] Tokens { get; }

    public int TrieNodes => Label.Length;
}
