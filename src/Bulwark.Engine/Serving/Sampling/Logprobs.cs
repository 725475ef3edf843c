namespace Bulwark.Engine.Serving.Sampling;

/// <summary>Log-probabilities of the raw model distribution (before bias, penalties and temperature, as vLLM reports by default).</summary>
internal static class Logprobs
{
    /// <summary>Returns log p(token) and fills <paramref name="top"/> with the most likely tokens, best first.</summary>
    public static float Of(ReadOnlySpan<float> logits, int token, Span<TokenLogprob> top)
    {
        var max = float.NegativeInfinity;
        foreach (var v in logits)
            max = Math.Max(max, v);
        double sum = 0;
        foreach (var v in logits)
            sum += Math.Exp(v - max);
        var logZ = max + (float)Math.Log(sum);

        if (!top.IsEmpty)
        {
            var filled = 0;
            for (var i = 0; i < logits.Length; i++)
            {
                var v = logits[i];
                if (float.IsNegativeInfinity(v))
                    continue; // masked out by a constraint: never a possible alternative
                if (filled == top.Length && v <= top[filled - 1].Logprob)
                    continue;
                // Insertion into a short sorted buffer: top holds at most 20 entries.
                var at = Math.Min(filled, top.Length - 1);
                while (at > 0 && top[at - 1].Logprob < v)
                {
                    top[at] = top[at - 1];
                    at--;
                }
                top[at] = new TokenLogprob(i, v);
                if (filled < top.Length)
                    filled++;
            }
            for (var i = 0; i < filled; i++)
                top[i] = top[i] with { Logprob = top[i].Logprob - logZ };
        }
        return logits[token] - logZ;
    }
}
