using System.Numerics.Tensors;
using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Weights;

namespace Bulwark.Engine.Model;

/// <summary>
/// Top-k routing as llama.cpp's <c>build_moe_ffn</c> computes it for Mixtral and Qwen3-MoE: a softmax over the
/// router's logits (exponentials summed in double, as ggml's soft_max), the <c>k</c> most probable experts in
/// descending order (a tie goes to the lower index), their probabilities as weights, divided by their sum when
/// the model renormalises.
/// </summary>
public static class ExpertRouting
{
    /// <param name="logits">One token's router logits, one per expert.</param>
    /// <param name="probabilities">Scratch of at least as many floats as experts.</param>
    /// <param name="experts">Receives the chosen experts, most probable first (length = experts used).</param>
    /// <param name="weights">Receives their weights, in the same order.</param>
    public static void Route(ReadOnlySpan<float> logits, bool normalize, Span<float> probabilities, Span<int> experts, Span<float> weights)
    {
        var count = logits.Length;
        var used = experts.Length;
        if (used < 1 || used > count) throw new ArgumentOutOfRangeException(nameof(experts), used, $"experts used must be between 1 and {count}");
        if (weights.Length != used) throw new ArgumentException($"weights need {used} floats; got {weights.Length}", nameof(weights));
        var p = probabilities[..count];
        var max = TensorPrimitives.Max(logits);
        double sum = 0;
        for (var e = 0; e < count; e++)
        {
            p[e] = MathF.Exp(logits[e] - max);
            sum += p[e];
        }
        var inverse = (float)(1.0 / sum);
        for (var e = 0; e < count; e++) p[e] *= inverse;
        for (var j = 0; j < used; j++)
        {
            // Selection over a handful of experts: the best not yet chosen, lower index on a tie.
            var best = -1;
            for (var e = 0; e < count; e++)
            {
                if (experts[..j].Contains(e)) continue;
                if (best < 0 || p[e] > p[best]) best = e;
            }
            experts[j] = best;
            weights[j] = p[best];
        }
        if (!normalize) return;
        double total = 0;
        foreach (var w in weights) total += w;
        var divisor = (float)total;
        for (var j = 0; j < used; j++) weights[j] /= divisor;
    }
}

/// <summary>
/// A mixture-of-experts MLP over a batch of token rows: every token routed (<see cref="ExpertRouting"/>), then
/// the batch's rows grouped by chosen expert and each used expert's gate/up/down run once over its rows, as one
/// <see cref="WeightMatrix.MatMul"/> each (a GEMM per expert, not a GEMV per token), on the weights as the file
/// stores them. Each token's output is the sum, in routing order, of its experts' outputs times their weights
/// (llama.cpp adds them in that order). Holds its scratch; not thread-safe (one per executor or session).
/// The per-token F32 reference it is tested against is <see cref="Reference.ReferenceMixtureOfExperts"/>.
/// </summary>
public sealed class MixtureOfExperts(LlamaConfig config)
{
    private float[] _logits = [], _probabilities = [], _weights = [], _input = [], _gate = [], _up = [], _expertOutput = [], _slots = [];
    private int[] _chosen = [], _counts = [], _order = [];

    /// <summary>output[t] = Σ_j weight[t, j] · expert_j(x[t]) for <paramref name="tokens"/> rows of x.</summary>
    public void Apply(ExpertWeights experts, ReadOnlySpan<float> x, int tokens, Span<float> output)
    {
        var (dim, used, count) = (config.EmbeddingLength, config.ExpertsUsed, experts.Count);
        var width = experts.Gate[0].Rows;
        if (x.Length < tokens * dim || output.Length < tokens * dim)
            throw new ArgumentException($"input and output need {tokens} rows of {dim}");
        Ensure(tokens, count, width);
        var logits = _logits.AsSpan(0, tokens * count);
        // One token at a time: the router is small (experts × dim) and a near tie between two experts must not be
        // decided by the batch a token happens to share a step with (a float GEMM sums in another order than a GEMV).
        for (var t = 0; t < tokens; t++) experts.Router.MatMul(x.Slice(t * dim, dim), logits.Slice(t * count, count), 1);
        var slots = tokens * used;
        for (var t = 0; t < tokens; t++)
            ExpertRouting.Route(logits.Slice(t * count, count), config.NormalizeExpertWeights, _probabilities,
                _chosen.AsSpan(t * used, used), _weights.AsSpan(t * used, used));

        // Slots (token × rank) ordered by expert: a counting sort.
        var counts = _counts.AsSpan(0, count + 1);
        counts.Clear();
        for (var s = 0; s < slots; s++) counts[_chosen[s] + 1]++;
        for (var e = 0; e < count; e++) counts[e + 1] += counts[e];
        for (var s = 0; s < slots; s++) _order[counts[_chosen[s]]++] = s;
        // counts[e] is now the end of expert e's slots; its start is counts[e - 1] (0 for the first).
        var start = 0;
        for (var e = 0; e < count; e++)
        {
            var end = counts[e];
            var rows = end - start;
            if (rows > 0) RunExpert(experts, e, _order.AsSpan(start, rows), x);
            start = end;
        }

        for (var t = 0; t < tokens; t++)
        {
            var o = output.Slice(t * dim, dim);
            _slots.AsSpan(t * used * dim, dim).CopyTo(o);
            for (var j = 1; j < used; j++) VectorOps.Add(o, _slots.AsSpan((t * used + j) * dim, dim));
        }
    }

    /// <summary>Expert <paramref name="e"/> over the tokens of <paramref name="slots"/>: gathered, multiplied as one batch, weighted into each slot.</summary>
    private void RunExpert(ExpertWeights experts, int e, ReadOnlySpan<int> slots, ReadOnlySpan<float> x)
    {
        var (dim, used) = (config.EmbeddingLength, config.ExpertsUsed);
        var width = experts.Gate[e].Rows;
        var rows = slots.Length;
        var input = _input.AsSpan(0, rows * dim);
        for (var i = 0; i < rows; i++) x.Slice(slots[i] / used * dim, dim).CopyTo(input.Slice(i * dim, dim));
        var gate = _gate.AsSpan(0, rows * width);
        var up = _up.AsSpan(0, rows * width);
        WeightMatrix.MatMulShared(input, rows, experts.Gate[e], gate, experts.Up[e], up);
        VectorOps.SiluGate(gate, up);
        var result = _expertOutput.AsSpan(0, rows * dim);
        experts.Down[e].MatMul(gate, result, rows);
        for (var i = 0; i < rows; i++)
            TensorPrimitives.Multiply(result.Slice(i * dim, dim), _weights[slots[i]], _slots.AsSpan(slots[i] * dim, dim));
    }

    private void Ensure(int tokens, int count, int width)
    {
        var used = config.ExpertsUsed;
        var dim = config.EmbeddingLength;
        Grow(ref _logits, tokens * count);
        Grow(ref _probabilities, count);
        Grow(ref _weights, tokens * used);
        Grow(ref _chosen, tokens * used);
        Grow(ref _order, tokens * used);
        Grow(ref _counts, count + 1);
        // An expert sees each token at most once: at most `tokens` rows.
        Grow(ref _input, tokens * dim);
        Grow(ref _gate, tokens * width);
        Grow(ref _up, tokens * width);
        Grow(ref _expertOutput, tokens * dim);
        Grow(ref _slots, tokens * used * dim);
    }

    private static void Grow<T>(ref T[] array, int length)
    {
        if (array.Length < length) array = GC.AllocateUninitializedArray<T>(Math.Max(length, array.Length * 2));
    }
}
