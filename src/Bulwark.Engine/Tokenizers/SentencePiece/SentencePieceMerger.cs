using System.Buffers;

namespace Bulwark.Engine.Tokenizers.SentencePiece;

/// <summary>
/// One run of SentencePiece BPE over escaped text: a linked list of symbols (byte ranges of
/// the text) and a heap of candidate merges ordered by token score, highest first, leftmost on
/// ties. A heap entry is stale when either side has merged since; it is skipped on pop.
/// O(n log n) in the text length, so a megabyte of one letter is no worse than prose.
/// </summary>
internal ref struct SentencePieceMerger
{
    private readonly ReadOnlySpan<byte> _text;
    private readonly ByteSequenceMap _ids;
    private readonly float[] _scores;

    public SentencePieceMerger(ReadOnlySpan<byte> text, ByteSequenceMap ids, float[] scores)
    {
        _text = text;
        _ids = ids;
        _scores = scores;
    }

    private sealed class Leftmost : IComparer<(float Score, int Left)>
    {
        public static readonly Leftmost HighestScoreFirst = new();

        public int Compare((float Score, int Left) x, (float Score, int Left) y)
        {
            var byScore = y.Score.CompareTo(x.Score);
            return byScore != 0 ? byScore : x.Left.CompareTo(y.Left);
        }
    }

    /// <summary>Merges and appends the ids; returns the heap operations (pushes and pops) it took, linear in the text's length.</summary>
    public long Run(List<int> output, int[] byteTokens)
    {
        if (_text.Length == 0) return 0;
        long operations = 0;
        // Symbols are indexed by their start offset in the text; length 0 marks a merged-away symbol.
        var n = _text.Length;
        var length = ArrayPool<int>.Shared.Rent(n);
        var next = ArrayPool<int>.Shared.Rent(n);
        var prev = ArrayPool<int>.Shared.Rent(n);
        try
        {
            var last = -1;
            for (var offset = 0; offset < n;)
            {
                var size = Math.Min(Utf8SequenceLength(_text[offset]), n - offset);
                length[offset] = size;
                prev[offset] = last;
                if (last >= 0) next[last] = offset;
                last = offset;
                offset += size;
            }
            next[last] = -1;

            var heap = new PriorityQueue<(int Left, int Size), (float Score, int Left)>(Leftmost.HighestScoreFirst);
            for (var s = 0; next[s] >= 0; s = next[s]) operations += TryQueue(heap, length, s, next[s]);

            while (heap.TryDequeue(out var candidate, out _))
            {
                operations++;
                var left = candidate.Left;
                var right = left + length[left];
                // Stale: the left symbol grew or vanished, or the right one is gone.
                if (length[left] == 0 || right >= n || length[right] == 0 || length[left] + length[right] != candidate.Size) continue;

                length[left] += length[right];
                length[right] = 0;
                next[left] = next[right];
                if (next[left] >= 0) prev[next[left]] = left;
                if (prev[left] >= 0) operations += TryQueue(heap, length, prev[left], left);
                if (next[left] >= 0) operations += TryQueue(heap, length, left, next[left]);
            }

            for (var s = 0; s >= 0; s = next[s]) Emit(_text.Slice(s, length[s]), output, byteTokens);
            return operations;
        }
        finally
        {
            ArrayPool<int>.Shared.Return(length);
            ArrayPool<int>.Shared.Return(next);
            ArrayPool<int>.Shared.Return(prev);
        }
    }

    /// <summary>Queues the pair if its joined text is a token; returns how many entries were queued (0 or 1).</summary>
    private readonly int TryQueue(PriorityQueue<(int Left, int Size), (float Score, int Left)> heap, int[] length, int left, int right)
    {
        var size = length[left] + length[right];
        if (!_ids.TryGet(_text.Slice(left, size), out var id)) return 0;
        heap.Enqueue((left, size), (_scores[id], left));
        return 1;
    }

    private readonly void Emit(ReadOnlySpan<byte> symbol, List<int> output, int[] byteTokens)
    {
        if (_ids.TryGet(symbol, out var id))
        {
            output.Add(id);
            return;
        }
        foreach (var b in symbol)
        {
            var byteToken = byteTokens[b];
            if (byteToken >= 0) output.Add(byteToken);
        }
    }

    /// <summary>llama.cpp's <c>unicode_len_utf8</c>: length from the lead byte's top nibble; a stray continuation byte counts as 1.</summary>
    private static int Utf8SequenceLength(byte lead) => (lead >> 4) switch
    {
        < 0xC => 1,
        0xC or 0xD => 2,
        0xE => 3,
        _ => 4,
    };
}
