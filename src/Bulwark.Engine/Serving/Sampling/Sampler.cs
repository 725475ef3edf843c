using Bulwark.Engine.Randomness;

namespace Bulwark.Engine.Serving.Sampling;

/// <summary>
/// Turns one row of logits into the next token. Scratch buffers are sized to the vocabulary once,
/// so sampling allocates nothing per token. Single-threaded (owned by the step loop).
/// </summary>
internal sealed class Sampler
{
    private readonly float[] _work;
    private readonly float[] _probs;
    private readonly float[] _keys;
    private readonly int[] _order;
    private readonly int[] _ranked;
    private readonly int[] _counts;
    private readonly bool[] _seen;
    private readonly float[] _masked;

    public Sampler(int vocabSize)
    {
        if (vocabSize < 1)
            throw new ArgumentOutOfRangeException(nameof(vocabSize), $"vocabulary size must be at least 1; got {vocabSize}");
        VocabSize = vocabSize;
        _work = new float[vocabSize];
        _probs = new float[vocabSize];
        _keys = new float[vocabSize];
        _order = new int[vocabSize];
        _ranked = new int[vocabSize];
        _counts = new int[vocabSize];
        _seen = new bool[vocabSize];
        _masked = new float[vocabSize];
    }

    public int VocabSize { get; }

    /// <summary>Chooses the next token and fills logprobs when asked (<paramref name="top"/> sized to the number wanted).</summary>
    public int Sample(ReadOnlySpan<float> logits, SamplingParams p, ReadOnlySpan<int> prompt, ReadOnlySpan<int> output,
        ref SplitMixRandom random, out float logprob, Span<TokenLogprob> top) =>
        Sample(logits, p, prompt, output, ref random, out logprob, top, default, default);

    /// <summary>
    /// Chooses the next token among those <paramref name="allowed"/> (a bitset by token id) or listed in
    /// <paramref name="alsoAllowed"/> (end of sequence in an accepting state); an empty
    /// <paramref name="allowed"/> means no constraint. The mask is applied to the logits after bias and
    /// penalties and before temperature, min-p, top-k, top-p and the draw (and greedy's argmax), so
    /// every one of them sees only allowed tokens. Logprobs are then of the masked distribution: the
    /// raw logits with disallowed tokens removed, so top_logprobs never lists a token that could not
    /// be produced. The caller guarantees at least one token is allowed.
    /// </summary>
    public int Sample(ReadOnlySpan<float> logits, SamplingParams p, ReadOnlySpan<int> prompt, ReadOnlySpan<int> output,
        ref SplitMixRandom random, out float logprob, Span<TokenLogprob> top, ReadOnlySpan<ulong> allowed, ReadOnlySpan<int> alsoAllowed)
    {
        var adjusted = Adjust(logits, p, prompt, output);
        if (!allowed.IsEmpty)
            Mask(_work, allowed, alsoAllowed);
        int token;
        if (p.IsGreedy)
        {
            token = ArgMax(adjusted);
        }
        else
        {
            token = DrawFrom(adjusted, p, random.NextDouble());
        }
        var wantLogprobs = p.Logprobs || !top.IsEmpty;
        if (wantLogprobs && !allowed.IsEmpty)
        {
            logits.CopyTo(_masked);
            Mask(_masked, allowed, alsoAllowed);
            logits = _masked;
        }
        logprob = wantLogprobs ? Logprobs.Of(logits, token, top) : 0f;
        return token;
    }

    /// <summary>Sets every token not allowed to −∞.</summary>
    public static void Mask(Span<float> values, ReadOnlySpan<ulong> allowed, ReadOnlySpan<int> alsoAllowed)
    {
        Span<float> keep = stackalloc float[Math.Min(alsoAllowed.Length, 16)];
        for (var k = 0; k < keep.Length; k++) keep[k] = values[alsoAllowed[k]];
        for (var w = 0; w < allowed.Length; w++)
        {
            var bits = allowed[w];
            if (bits == ulong.MaxValue) continue;
            var baseId = w << 6;
            var end = Math.Min(64, values.Length - baseId);
            for (var b = 0; b < end; b++)
                if ((bits >> b & 1) == 0) values[baseId + b] = float.NegativeInfinity;
        }
        for (var k = 0; k < keep.Length; k++) values[alsoAllowed[k]] = keep[k];
    }

    /// <summary>The logits after bias and penalties (a view of scratch memory, valid until the next call).</summary>
    public ReadOnlySpan<float> Adjust(ReadOnlySpan<float> logits, SamplingParams p, ReadOnlySpan<int> prompt, ReadOnlySpan<int> output)
    {
        if (logits.Length != VocabSize)
            throw new ArgumentException($"logits row has {logits.Length} entries; the vocabulary has {VocabSize}", nameof(logits));
        var work = _work.AsSpan();
        logits.CopyTo(work);
        if (p.LogitBias is { } bias)
            foreach (var (id, value) in bias)
                work[id] += value;
        if (p.RepetitionPenalty != 1f)
        {
            ApplyRepetition(work, prompt, p.RepetitionPenalty);
            ApplyRepetition(work, output, p.RepetitionPenalty);
            ClearSeen(prompt);
            ClearSeen(output);
        }
        if (p.FrequencyPenalty != 0f || p.PresencePenalty != 0f)
        {
            foreach (var t in output)
                _counts[t]++;
            foreach (var t in output)
            {
                var c = _counts[t];
                if (c == 0)
                    continue; // already applied for this token
                work[t] -= p.FrequencyPenalty * c + p.PresencePenalty;
                _counts[t] = 0;
            }
        }
        return work;
    }

    /// <summary>
    /// The distribution drawn from (zero for dropped tokens, not normalized): softmax at the
    /// temperature, then min-p, top-k, and top-p over what top-k kept.
    /// </summary>
    public ReadOnlySpan<float> Distribution(ReadOnlySpan<float> adjusted, SamplingParams p)
    {
        var probs = Softmax(adjusted, p);
        if (Truncates(p, probs.Length))
        {
            var keep = Cut(probs, p, _order, _ranked);
            Zero(probs, _ranked.AsSpan(0, keep));
        }
        return probs;
    }

    /// <summary>
    /// <see cref="Draw"/> over <see cref="Distribution"/>, the same token for the same <paramref name="u"/>,
    /// without the full passes of zeroing the dropped tokens and drawing over the whole vocabulary: with
    /// top-k/top-p the draw runs over the kept tokens only, in id order (zeros add nothing to Draw's sums).
    /// </summary>
    private int DrawFrom(ReadOnlySpan<float> adjusted, SamplingParams p, double u)
    {
        var probs = Softmax(adjusted, p);
        if (!Truncates(p, probs.Length)) return Draw(probs, u);
        var keep = Cut(probs, p, _order, _ranked);
        var kept = _ranked.AsSpan(0, keep);
        kept.Sort();
        var weights = _keys.AsSpan(0, keep);
        for (var r = 0; r < keep; r++) weights[r] = probs[kept[r]];
        var drawn = Draw(weights, u);
        return drawn < 0 ? Draw(probs, u) : kept[drawn];
    }

    private static bool Truncates(SamplingParams p, int n) => (p.TopK > 0 && p.TopK < n) || p.TopP < 1f;

    /// <summary>Softmax at the temperature, then min-p, into scratch (valid until the next call).</summary>
    private Span<float> Softmax(ReadOnlySpan<float> adjusted, SamplingParams p)
    {
        var n = adjusted.Length;
        var probs = _probs.AsSpan(0, n);
        var max = float.NegativeInfinity;
        foreach (var v in adjusted)
            max = Math.Max(max, v);
        var invT = 1f / p.Temperature;
        double sum = 0;
        for (var i = 0; i < n; i++)
        {
            var e = MathF.Exp((adjusted[i] - max) * invT);
            probs[i] = e;
            sum += e;
        }
        var maxProb = 0f;
        for (var i = 0; i < n; i++)
        {
            probs[i] = (float)(probs[i] / sum);
            maxProb = Math.Max(maxProb, probs[i]);
        }

        if (p.MinP > 0f)
        {
            var threshold = p.MinP * maxProb;
            for (var i = 0; i < n; i++)
                if (probs[i] < threshold)
                    probs[i] = 0f;
        }
        return probs;
    }

    /// <summary>Zeroes every probability whose id is not in <paramref name="kept"/>.</summary>
    private void Zero(Span<float> probs, ReadOnlySpan<int> kept)
    {
        var keptValues = _keys.AsSpan(0, kept.Length);
        for (var r = 0; r < kept.Length; r++) keptValues[r] = probs[kept[r]];
        probs.Clear();
        for (var r = 0; r < kept.Length; r++) probs[kept[r]] = keptValues[r];
    }

    /// <summary>
    /// Top-k then top-p: the tokens kept, best first, in <paramref name="ranked"/>[0..returned). Ranks are by
    /// probability, the lower id first on ties. Perf: a heap over the tokens with a nonzero probability,
    /// popped only as far as the cut needs (k, or the nucleus) instead of sorting the vocabulary: O(V + m log V)
    /// for m kept. Its twin is <see cref="CutBySort"/>, which sorts everything; they rank and cut alike.
    /// A NaN probability (a NaN or +∞ logit) is refused: it has no rank.
    /// </summary>
    internal static int Cut(ReadOnlySpan<float> probs, SamplingParams p, Span<int> heap, Span<int> ranked)
    {
        var n = probs.Length;
        var size = 0;
        double total = 0;
        for (var i = 0; i < n; i++)
        {
            var v = probs[i];
            if (float.IsNaN(v)) throw new InvalidOperationException($"the distribution holds a NaN at token {i}: the logits held a NaN or an infinity");
            if (v > 0f)
            {
                heap[size++] = i;
                total += v;
            }
        }
        for (var i = size / 2 - 1; i >= 0; i--) SiftDown(probs, heap, i, size);
        var k = p.TopK > 0 ? Math.Min(p.TopK, n) : n;
        var count = 0;
        if (p.TopP >= 1f || k < size)
        {
            // Top-k (or top-k before top-p): the k best whatever top-p does next.
            for (; count < k && size > 0; count++) ranked[count] = Pop(probs, heap, ref size);
            return p.TopP < 1f ? Nucleus(probs, ranked, count, p.TopP, Sum(probs, ranked[..count])) : count;
        }
        // Top-p over every nonzero token: popped until the nucleus is complete.
        double cumulative = 0;
        while (size > 0)
        {
            var id = Pop(probs, heap, ref size);
            ranked[count++] = id;
            cumulative += probs[id];
            if (cumulative >= p.TopP * total - 1e-6) break;
        }
        return count;
    }

    /// <summary>
    /// <see cref="Cut"/>'s slow twin: every token sorted by (probability descending, id ascending), then
    /// the same cut. For tests.
    /// </summary>
    internal static int CutBySort(ReadOnlySpan<float> probs, SamplingParams p, Span<int> ranked)
    {
        var n = probs.Length;
        foreach (var v in probs)
            if (float.IsNaN(v)) throw new InvalidOperationException("the distribution holds a NaN");
        var ids = new int[n];
        for (var i = 0; i < n; i++) ids[i] = i;
        var values = probs.ToArray();
        Array.Sort(ids, (a, b) => values[a] != values[b] ? values[b].CompareTo(values[a]) : a.CompareTo(b));
        var positive = 0;
        double total = 0;
        for (var i = 0; i < n; i++)
            if (probs[i] > 0f)
            {
                positive++;
                total += probs[i];
            }
        var k = p.TopK > 0 ? Math.Min(p.TopK, n) : n;
        var count = Math.Min(k, positive);
        ids.AsSpan(0, count).CopyTo(ranked);
        if (p.TopP >= 1f) return count;
        return Nucleus(probs, ranked, count, p.TopP, k < positive ? Sum(probs, ranked[..count]) : total);
    }

    private static double Sum(ReadOnlySpan<float> probs, ReadOnlySpan<int> ids)
    {
        double sum = 0;
        foreach (var id in ids) sum += probs[id];
        return sum;
    }

    /// <summary>How many of the <paramref name="count"/> ranked tokens the nucleus of mass <paramref name="topP"/> × <paramref name="kept"/> takes.</summary>
    private static int Nucleus(ReadOnlySpan<float> probs, ReadOnlySpan<int> ranked, int count, float topP, double kept)
    {
        double cumulative = 0;
        var r = 0;
        while (r < count)
        {
            cumulative += probs[ranked[r]];
            r++;
            // The epsilon keeps float rounding of the probabilities from taking one token too many.
            if (cumulative >= topP * kept - 1e-6)
                break;
        }
        return r;
    }

    /// <summary>Whether token a ranks before token b: more probable, or as probable with a lower id.</summary>
    private static bool Before(ReadOnlySpan<float> probs, int a, int b) => probs[a] > probs[b] || (probs[a] == probs[b] && a < b);

    private static int Pop(ReadOnlySpan<float> probs, Span<int> heap, ref int size)
    {
        var top = heap[0];
        heap[0] = heap[--size];
        SiftDown(probs, heap, 0, size);
        return top;
    }

    private static void SiftDown(ReadOnlySpan<float> probs, Span<int> heap, int i, int size)
    {
        var item = heap[i];
        while (true)
        {
            var child = 2 * i + 1;
            if (child >= size) break;
            if (child + 1 < size && Before(probs, heap[child + 1], heap[child])) child++;
            if (!Before(probs, heap[child], item)) break;
            heap[i] = heap[child];
            i = child;
        }
        heap[i] = item;
    }

    /// <summary>Inverse-CDF draw: the first token whose cumulative mass exceeds u × total.</summary>
    public static int Draw(ReadOnlySpan<float> weights, double u)
    {
        double total = 0;
        foreach (var w in weights)
            total += w;
        var target = u * total;
        double cumulative = 0;
        var last = -1;
        for (var i = 0; i < weights.Length; i++)
        {
            if (weights[i] <= 0f)
                continue;
            cumulative += weights[i];
            last = i;
            if (cumulative > target)
                return i;
        }
        return last; // rounding at the very top of the range
    }

    /// <summary>Index of the largest value; the lowest index wins ties, so greedy output is deterministic.</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        var best = 0;
        for (var i = 1; i < values.Length; i++)
            if (values[i] > values[best])
                best = i;
        return best;
    }

    private void ApplyRepetition(Span<float> work, ReadOnlySpan<int> tokens, float penalty)
    {
        foreach (var t in tokens)
        {
            if (_seen[t])
                continue;
            _seen[t] = true;
            work[t] = work[t] > 0 ? work[t] / penalty : work[t] * penalty;
        }
    }

    private void ClearSeen(ReadOnlySpan<int> tokens)
    {
        foreach (var t in tokens)
            _seen[t] = false;
    }
}
