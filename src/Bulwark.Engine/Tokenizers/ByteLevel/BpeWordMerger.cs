using System.Buffers;

namespace Bulwark.Engine.Tokenizers.ByteLevel;

/// <summary>
/// Applies BPE merges to one pre-token: repeatedly joins the adjacent pair with the lowest
/// rank, the leftmost on ties (the rule HF tokenizers, tiktoken and llama.cpp share).
/// Short words use a scan with cached pair ranks; long words (a 1 MB run of one letter is one
/// word) use a heap over a linked list, so the cost stays O(n log n) instead of O(n²).
/// </summary>
internal static class BpeWordMerger
{
    /// <summary>Words up to this many symbols use the scan; measured faster than the heap below ~64.</summary>
    public const int ShortWordLimit = 64;

    /// <summary>Merges <paramref name="ids"/> in place and returns how many symbols remain.</summary>
    public static int Merge(Span<int> ids, BpeMergeTable table) =>
        ids.Length <= ShortWordLimit ? MergeByScan(ids, table) : MergeByHeap(ids, table);

    /// <summary>The obviously-correct form: scan every pair for the lowest rank, merge, repeat.</summary>
    internal static int MergeByScan(Span<int> ids, BpeMergeTable table)
    {
        var n = ids.Length;
        if (n < 2) return n;
        Span<int> ranks = n <= 256 ? stackalloc int[n] : new int[n];
        Span<int> results = n <= 256 ? stackalloc int[n] : new int[n];
        for (var i = 0; i + 1 < n; i++) ranks[i] = table.RankOf(ids[i], ids[i + 1], out results[i]);

        while (n > 1)
        {
            var best = -1;
            var bestRank = int.MaxValue;
            for (var i = 0; i + 1 < n; i++)
            {
                if (ranks[i] < bestRank) { bestRank = ranks[i]; best = i; }
            }
            if (best < 0) break;

            ids[best] = results[best];
            // Remove symbol best+1 and the pair rank that started at it.
            ids.Slice(best + 2, n - best - 2).CopyTo(ids.Slice(best + 1));
            ranks.Slice(best + 1, n - best - 2).CopyTo(ranks.Slice(best));
            results.Slice(best + 1, n - best - 2).CopyTo(results.Slice(best));
            n--;
            if (best > 0) ranks[best - 1] = table.RankOf(ids[best - 1], ids[best], out results[best - 1]);
            if (best + 1 < n) ranks[best] = table.RankOf(ids[best], ids[best + 1], out results[best]);
        }
        return n;
    }

    /// <summary>Heap of (rank, position) over a doubly linked list of symbols; stale entries are skipped on pop.</summary>
    internal static int MergeByHeap(Span<int> ids, BpeMergeTable table) => MergeByHeap(ids, table, out _);

    /// <summary>
    /// As above, also counting heap operations (pushes and pops): each merge pushes at most two
    /// pairs, so the count stays linear in the word's length, which tests assert without timing.
    /// </summary>
    internal static int MergeByHeap(Span<int> ids, BpeMergeTable table, out long heapOperations)
    {
        heapOperations = 0;
        var n = ids.Length;
        if (n < 2) return n;
        var next = ArrayPool<int>.Shared.Rent(n);
        var prev = ArrayPool<int>.Shared.Rent(n);
        var heap = new PriorityQueue<int, long>(n);
        try
        {
            for (var i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; }
            for (var i = 0; i + 1 < n; i++) heapOperations += Push(heap, table, ids, i, i + 1);

            while (heap.TryDequeue(out var left, out var priority))
            {
                heapOperations++;
                var right = next[left];
                if (ids[left] < 0 || right < 0) continue;
                var rank = table.RankOf(ids[left], ids[right], out var merged);
                if (rank != (int)(priority >> 32)) continue; // the pair changed since it was queued

                ids[left] = merged;
                ids[right] = -1;
                var after = next[right];
                next[left] = after;
                if (after >= 0) prev[after] = left;
                if (prev[left] >= 0) heapOperations += Push(heap, table, ids, prev[left], left);
                if (after >= 0) heapOperations += Push(heap, table, ids, left, after);
            }

            var count = 0;
            for (var i = 0; i >= 0; i = next[i]) ids[count++] = ids[i];
            return count;
        }
        finally
        {
            ArrayPool<int>.Shared.Return(next);
            ArrayPool<int>.Shared.Return(prev);
        }
    }

    /// <summary>Queues the pair starting at <paramref name="left"/> if it merges; returns how many entries were queued (0 or 1).</summary>
    private static int Push(PriorityQueue<int, long> heap, BpeMergeTable table, Span<int> ids, int left, int right)
    {
        var rank = table.RankOf(ids[left], ids[right], out _);
        if (rank == int.MaxValue) return 0;
        heap.Enqueue(left, ((long)rank << 32) | (uint)left);
        return 1;
    }
}
