namespace Bulwark.Engine.Serving.Speculation;

/// <summary>
/// Prompt-lookup drafting: the longest tail n-gram of the tokens so far (n from the maximum down to the
/// minimum) that occurred earlier, and the tokens that followed its most recent earlier occurrence.
/// When output copies its prompt (summaries, edits, code changes) or repeats itself, those are the
/// tokens the model is about to write.
/// </summary>
internal static class PromptLookup
{
    /// <summary>Writes up to <c>drafts.Length</c> proposed tokens and returns how many (0: no n-gram matched).</summary>
    public static int Propose(ReadOnlySpan<int> tokens, int minNgram, int maxNgram, Span<int> drafts)
    {
        var length = tokens.Length;
        for (var n = Math.Min(maxNgram, length - 1); n >= minNgram; n--)
        {
            var tail = tokens[(length - n)..];
            // Perf: a backward scan, O(length × n) per step; small next to a forward pass over the same context.
            for (var start = length - n - 1; start >= 0; start--)
            {
                if (!tokens.Slice(start, n).SequenceEqual(tail))
                    continue;
                var from = start + n;
                var count = Math.Min(drafts.Length, length - from);
                tokens.Slice(from, count).CopyTo(drafts);
                return count;
            }
        }
        return 0;
    }

    /// <summary>The slow twin: every earlier occurrence tried for every n, the first match kept (tests hold the two together).</summary>
    internal static int ProposeNaive(int[] tokens, int minNgram, int maxNgram, int[] drafts)
    {
        for (var n = maxNgram; n >= minNgram; n--)
        {
            if (n >= tokens.Length) continue;
            var tail = tokens.Skip(tokens.Length - n).ToArray();
            var matches = Enumerable.Range(0, tokens.Length - n)
                .Where(start => tokens.Skip(start).Take(n).SequenceEqual(tail))
                .ToList();
            if (matches.Count == 0) continue;
            var follow = tokens.Skip(matches[^1] + n).Take(drafts.Length).ToArray();
            follow.CopyTo(drafts, 0);
            return follow.Length;
        }
        return 0;
    }
}
