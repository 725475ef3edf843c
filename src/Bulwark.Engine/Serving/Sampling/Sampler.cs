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
            var probs = Distribution(adjusted, p);
            token = Draw(probs, random.NextDouble());
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

        if ((p.TopK > 0 && p.TopK < n) || p.TopP < 1f)
        {
            // Perf: a full sort per token is O(V log V); fine next to a forward pass over the same vocabulary.
            for (var i = 0; i < n; i++)
            {
                _keys[i] = -probs[i];
                _order[i] = i;
            }
            Array.Sort(_keys, _order, 0, n);
            var keep = p.TopK > 0 ? Math.Min(p.TopK, n) : n;
            if (p.TopP < 1f)
            {
                double kept = 0;
                for (var r = 0; r < keep; r++)
                    kept += probs[_order[r]];
                double cumulative = 0;
                var r2 = 0;
                while (r2 < keep)
                {
                    cumulative += probs[_order[r2]];
                    r2++;
                    // The epsilon keeps float rounding of the probabilities from taking one token too many.
                    if (cumulative >= p.TopP * kept - 1e-6)
                        break;
                }
                keep = r2;
            }
            for (var r = keep; r < n; r++)
                probs[_order[r]] = 0f;
        }
        return probs;
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
