namespace Bulwark.Engine.Model;

/// <summary>
/// Runs the forward pass for one sequence, one token at a time, over a contiguous KV cache.
/// All buffers are allocated once here; <see cref="Forward"/> allocates nothing.
/// </summary>
public sealed partial class LlamaSession : IDisposable
{
    private readonly LlamaModel _model;
    private readonly ContiguousKvCache _cache;
    private readonly NativeBuffer _x, _normed, _query, _attention, _residual, _gate, _up, _scores, _logits;

    internal LlamaSession(LlamaModel model, int contextLength)
    {
        _model = model;
        var c = model.Config;
        _cache = new ContiguousKvCache(c.LayerCount, contextLength, c.KeyValueLength);
        _x = new NativeBuffer(c.EmbeddingLength);
        _normed = new NativeBuffer(c.EmbeddingLength);
        _query = new NativeBuffer(c.QueryLength);
        _attention = new NativeBuffer(c.QueryLength);
        _residual = new NativeBuffer(c.EmbeddingLength);
        _gate = new NativeBuffer(c.FeedForwardLength);
        _up = new NativeBuffer(c.FeedForwardLength);
        _scores = new NativeBuffer(contextLength);
        _logits = new NativeBuffer(c.VocabularySize);
    }

    public int ContextLength => _cache.Capacity;

    /// <summary>
    /// Feeds <paramref name="token"/> at <paramref name="position"/> (positions must be fed in order
    /// from 0) and returns the logits for the next token, valid until the next call.
    /// </summary>
    public ReadOnlySpan<float> Forward(int token, int position)
    {
        var c = _model.Config;
        var w = _model.Weights;
        if ((uint)token >= (uint)c.VocabularySize)
            throw new ArgumentOutOfRangeException(nameof(token), token, $"token id must be between 0 and {c.VocabularySize - 1}");
        if ((uint)position >= (uint)ContextLength)
            throw new ArgumentOutOfRangeException(nameof(position), position, $"position must be between 0 and {ContextLength - 1} (the session's context length)");

        var x = _x.Span;
        var normed = _normed.Span;
        w.TokenEmbedding.DequantizeRow(token, x);
        for (var l = 0; l < c.LayerCount; l++)
        {
            var layer = w.Layers[l];
            DecoderSteps.Norm(x, layer.AttentionNorm, c.RmsNormEpsilon, normed);
            var q = _query.Span;
            var k = _cache.Key(l, position);
            var v = _cache.Value(l, position);
            DecoderSteps.Project(layer.Query, normed, q, layer.QueryBias);
            DecoderSteps.Project(layer.Key, normed, k, layer.KeyBias);
            DecoderSteps.Project(layer.Value, normed, v, layer.ValueBias);
            if (layer.QueryNorm is not null && layer.KeyNorm is not null)
            {
                DecoderSteps.NormHeads(q, c.HeadDim, layer.QueryNorm, c.RmsNormEpsilon);
                DecoderSteps.NormHeads(k, c.HeadDim, layer.KeyNorm, c.RmsNormEpsilon);
            }
            DecoderSteps.ApplyRope(q, c, position, w.RopeInverseFrequencies);
            DecoderSteps.ApplyRope(k, c, position, w.RopeInverseFrequencies);
            DecoderSteps.Attend(q, _cache.Keys(l, position + 1), _cache.Values(l, position + 1), position + 1, c, _scores.Span, _attention.Span);
            DecoderSteps.Project(layer.Output, _attention.Span, _residual.Span);
            Add(x, _residual.Span);

            DecoderSteps.Norm(x, layer.FeedForwardNorm, c.RmsNormEpsilon, normed);
            DecoderSteps.Mlp(layer, normed, _gate.Span, _up.Span, _residual.Span);
            Add(x, _residual.Span);
        }
        DecoderSteps.Norm(x, w.OutputNorm, c.RmsNormEpsilon, normed);
        w.Output.MatVec(normed, _logits.Span);
        return _logits.Span;
    }

    private static void Add(Span<float> x, ReadOnlySpan<float> delta) => Kernels.Cpu.VectorOps.Add(x, delta);

    public void Dispose()
    {
        _cache.Dispose();
        DisposeBatch();
        foreach (var b in new[] { _x, _normed, _query, _attention, _residual, _gate, _up, _scores, _logits }) b.Dispose();
    }
}
