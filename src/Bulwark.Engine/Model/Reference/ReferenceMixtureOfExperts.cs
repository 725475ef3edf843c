using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Weights;

namespace Bulwark.Engine.Model.Reference;

/// <summary>
/// The slow twin of <see cref="MixtureOfExperts"/>: token by token, every chosen expert, every weight row
/// dequantized to float32 and dotted with the float32 activations (no grouping, no quantized activations,
/// no worker pool). Tests hold the fast path to it.
/// </summary>
public static class ReferenceMixtureOfExperts
{
    public static void Apply(LlamaConfig config, ExpertWeights experts, ReadOnlySpan<float> x, int tokens, Span<float> output)
    {
        var (dim, used, count) = (config.EmbeddingLength, config.ExpertsUsed, experts.Count);
        var logits = new float[count];
        var probabilities = new float[count];
        var chosen = new int[used];
        var weights = new float[used];
        for (var t = 0; t < tokens; t++)
        {
            var row = x.Slice(t * dim, dim);
            MatVec(experts.Router, row, logits);
            ExpertRouting.Route(logits, config.NormalizeExpertWeights, probabilities, chosen, weights);
            var o = output.Slice(t * dim, dim);
            for (var j = 0; j < used; j++)
            {
                var e = chosen[j];
                var width = experts.Gate[e].Rows;
                var gate = new float[width];
                var up = new float[width];
                MatVec(experts.Gate[e], row, gate);
                MatVec(experts.Up[e], row, up);
                for (var i = 0; i < width; i++) gate[i] = gate[i] / (1f + MathF.Exp(-gate[i])) * up[i];
                var y = new float[dim];
                MatVec(experts.Down[e], gate, y);
                for (var i = 0; i < dim; i++) o[i] = j == 0 ? y[i] * weights[j] : o[i] + y[i] * weights[j];
            }
        }
    }

    private static void MatVec(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y)
    {
        var row = new float[w.Columns];
        for (var r = 0; r < w.Rows; r++)
        {
            w.DequantizeRow(r, row);
            var sum = 0f;
            for (var i = 0; i < row.Length; i++) sum += row[i] * x[i];
            y[r] = sum;
        }
    }
}
