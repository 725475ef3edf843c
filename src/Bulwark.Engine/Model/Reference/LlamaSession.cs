using Bulwark.Engine.KvCache;
using Bulwark.Engine.Memory;
using Bulwark.Engine.Model.Weights;

namespace Bulwark.Engine.Model.Reference;

/// <summary>
/// The reference forward pass, llama2.c style: one sequence, one token at a time, over a
/// contiguous KV cache, the decoder block read top to bottom. The serving engine runs the batched
/// pass (<c>Serving/Execution/PagedLlamaExecutor</c>) and is tested against this one; <c>bulwark
/// generate</c> and the quantization check (<c>Evaluation/ModelComparison</c>) run it directly.
/// All buffers are allocated once here; <see cref="Forward"/> allocates nothing.
/// </summary>
public sealed unsafe class LlamaSession : IDisposable
{
    private readonly LlamaModel _model;
    private readonly ContiguousKvCache _cache;
    private readonly NativeBuffer _x, _normed, _query, _attention, _residual, _gate, _up, _logits;

    /// <summary>The mixture-of-experts MLP (the batched executor's, with one token); null for a dense model.</summary>
    private readonly MixtureOfExperts? _experts;

    /// <summary>RoPE frequencies for this session's context length (LongRoPE picks its set by it).</summary>
    private readonly float[] _ropeFrequencies;

    /// <summary>A session over <paramref name="model"/> with its own KV cache of <paramref name="contextLength"/> positions (the model's context length when null).</summary>
    public LlamaSession(LlamaModel model, int? contextLength = null)
    {
        var c = model.Config;
        var length = contextLength ?? c.ContextLength;
        if (length < 1 || length > c.ContextLength)
            throw new ArgumentOutOfRangeException(nameof(contextLength), length, $"context length must be between 1 and the model's {c.ContextLength}");
        _model = model;
        _cache = new ContiguousKvCache(c.LayerCount, length, c.KeyValueLength);
        _x = new NativeBuffer(c.EmbeddingLength);
        _normed = new NativeBuffer(c.EmbeddingLength);
        _query = new NativeBuffer(c.QueryLength);
        _attention = new NativeBuffer(c.QueryLength);
        _residual = new NativeBuffer(c.EmbeddingLength);
        _gate = new NativeBuffer(c.FeedForwardLength);
        _up = new NativeBuffer(c.FeedForwardLength);
        _logits = new NativeBuffer(c.VocabularySize);
        _experts = c.IsMixtureOfExperts ? new MixtureOfExperts(c) : null;
        _ropeFrequencies = model.Weights.RopeInverseFrequenciesFor(length);
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
        if (c.Gemma is { } gemma) Kernels.Cpu.VectorOps.Scale(x, gemma.EmbeddingScale);
        for (var l = 0; l < c.LayerCount; l++)
        {
            var layer = w.Layers[l];
            DecoderSteps.Norm(x, layer.AttentionNorm, c.RmsNormEpsilon, normed);
            var q = _query.Span;
            var k = _cache.Key(l, position);
            var v = _cache.Value(l, position);
            WeightMatrix.MatMulShared(normed, 1, layer.Query, q, layer.Key, k, layer.Value, v);
            if (layer.QueryBias is not null) Kernels.Cpu.VectorOps.Add(q, layer.QueryBias.Span);
            if (layer.KeyBias is not null) Kernels.Cpu.VectorOps.Add(k, layer.KeyBias.Span);
            if (layer.ValueBias is not null) Kernels.Cpu.VectorOps.Add(v, layer.ValueBias.Span);
            if (layer.QueryNorm is not null && layer.KeyNorm is not null)
            {
                DecoderSteps.NormHeads(q, c.HeadDim, layer.QueryNorm, c.RmsNormEpsilon);
                DecoderSteps.NormHeads(k, c.HeadDim, layer.KeyNorm, c.RmsNormEpsilon);
            }
            if (c.UsesRope(l))
            {
                DecoderSteps.ApplyRope(q, c, position, w.RopeFor(c, l, _ropeFrequencies));
                DecoderSteps.ApplyRope(k, c, position, w.RopeFor(c, l, _ropeFrequencies));
            }
            // A windowed layer sees its last `window` positions: the cache from the window's start on.
            var window = c.WindowOf(l);
            var from = window > 0 ? Math.Max(0, position - window + 1) : 0;
            var kvLength = c.KeyValueLength;
            var keys = _cache.Keys(l, position + 1)[(from * kvLength)..];
            var values = _cache.Values(l, position + 1)[(from * kvLength)..];
            if (c.Gemma is { AttentionLogitSoftCap: > 0 } capped)
                AttendSoftCapped(q, keys, values, position + 1 - from, capped);
            else
            {
                if (GemmaSteps.QueryFactor(c) is var factor && factor != 1f) Kernels.Cpu.VectorOps.Scale(q, factor);
                AttendHeads(q, keys, values, position + 1 - from);
            }
            DecoderSteps.Project(layer.Output, _attention.Span, _residual.Span);
            if (layer.PostAttentionNorm is not null) DecoderSteps.Norm(_residual.Span, layer.PostAttentionNorm, c.RmsNormEpsilon, _residual.Span);
            Add(x, _residual.Span);

            DecoderSteps.Norm(x, layer.FeedForwardNorm, c.RmsNormEpsilon, normed);
            if (layer.Experts is { } experts) _experts!.Apply(experts, normed, 1, _residual.Span);
            else DecoderSteps.Mlp(layer, normed, _gate.Span, _up.Span, _residual.Span, gelu: c.Gemma is not null);
            if (layer.PostFeedForwardNorm is not null) DecoderSteps.Norm(_residual.Span, layer.PostFeedForwardNorm, c.RmsNormEpsilon, _residual.Span);
            Add(x, _residual.Span);
        }
        DecoderSteps.Norm(x, w.OutputNorm, c.RmsNormEpsilon, normed);
        w.Output.MatVec(normed, _logits.Span);
        if (c.Gemma is { } final) GemmaSteps.SoftCap(_logits.Span, final.FinalLogitSoftCap);
        return _logits.Span;
    }

    /// <summary>The final norm's output for the token of the last <see cref="Forward"/> (what embeddings pool), valid until the next call.</summary>
    public ReadOnlySpan<float> FinalHidden => _normed.Span;

    private static void Add(Span<float> x, ReadOnlySpan<float> delta) => Kernels.Cpu.VectorOps.Add(x, delta);

    private struct HeadsJob
    {
        public float* Query, Keys, Values, Output;
        public int Positions, HeadCount, KvHeadCount, HeadDim;
    }

    /// <summary>One decode token's attention, its query heads spread over the worker pool (they were one thread's work while the matmuls used all).</summary>
    private void AttendHeads(Span<float> query, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int positions)
    {
        var c = _model.Config;
        fixed (float* q = query)
        fixed (float* k = keys)
        fixed (float* v = values)
        fixed (float* o = _attention.Span)
        {
            var job = new HeadsJob { Query = q, Keys = k, Values = v, Output = o, Positions = positions, HeadCount = c.HeadCount, KvHeadCount = c.KeyValueHeadCount, HeadDim = c.HeadDim };
            if (Kernels.Cpu.TiledAttention.CanRun(Kernels.Cpu.KernelIsa.Active, c.HeadDim) && Kernels.Cpu.TiledAttention.FillsForOneToken(c.HeadCount, c.KeyValueHeadCount))
            {
                // The query heads of a KV group as the rows of one tile: each key and value element read once for all of them.
                Kernels.Cpu.WorkerPool.Shared.Run(&TiledHeadsItem, &job, Kernels.Cpu.TiledAttention.Items(1, c.HeadCount, c.KeyValueHeadCount));
                return;
            }
            _ = Kernels.Cpu.Attention.ScoreScratch(job.Positions); // the caller's own, see ScoreScratch
            Kernels.Cpu.WorkerPool.Shared.Run(&HeadItem, &job, c.HeadCount);
        }
    }

    /// <summary>Gemma 2's attention: every score soft-capped before the softmax (<see cref="Kernels.Cpu.SoftCappedAttention"/>), on this thread.</summary>
    private void AttendSoftCapped(Span<float> query, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int positions, Config.GemmaConfig gemma)
    {
        var c = _model.Config;
        fixed (float* q = query)
        fixed (float* k = keys)
        fixed (float* v = values)
        fixed (float* o = _attention.Span)
        {
            var planes = new Kernels.Cpu.TiledAttention.KvPlanes(k, v);
            Kernels.Cpu.SoftCappedAttention.Attend(q, planes, 0, positions - 1, c.HeadCount, c.KeyValueHeadCount, c.HeadDim,
                gemma.AttentionScale, gemma.AttentionLogitSoftCap, o, Kernels.Cpu.Attention.ScoreScratch(positions));
        }
    }

    private static void TiledHeadsItem(void* context, int item)
    {
        var job = (HeadsJob*)context;
        Kernels.Cpu.TiledAttention.Run(item, job->Query, job->Output, job->HeadCount * job->HeadDim, job->Keys, job->Values,
            job->Positions - 1, 1, job->HeadCount, job->KvHeadCount, job->HeadDim);
    }

    private static void HeadItem(void* context, int head)
    {
        var job = (HeadsJob*)context;
        var scores = Kernels.Cpu.Attention.ScoreScratch(job->Positions);
        var kvLength = (long)job->KvHeadCount * job->HeadDim;
        var queryLength = job->HeadCount * job->HeadDim;
        Kernels.Cpu.Attention.AttendHeads(new ReadOnlySpan<float>(job->Query, queryLength),
            new ReadOnlySpan<float>(job->Keys, checked((int)(job->Positions * kvLength))), new ReadOnlySpan<float>(job->Values, checked((int)(job->Positions * kvLength))),
            job->Positions, head, head + 1, job->HeadCount, job->KvHeadCount, job->HeadDim, scores, new Span<float>(job->Output, queryLength));
    }

    public void Dispose()
    {
        _cache.Dispose();
        foreach (var b in new[] { _x, _normed, _query, _attention, _residual, _gate, _up, _logits }) b.Dispose();
    }
}
