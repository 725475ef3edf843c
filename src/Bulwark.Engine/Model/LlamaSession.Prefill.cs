using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Memory;

namespace Bulwark.Engine.Model;

/// <summary>
/// Batched prefill: every weight matrix multiplies all tokens of a chunk at once (a GEMM that reads
/// each weight block once per tile of tokens), attention runs per token over the causal prefix.
/// </summary>
public sealed unsafe partial class LlamaSession
{
    /// <summary>Tokens per batched pass; longer prompts run in chunks of this many.</summary>
    public const int MaxPrefillChunk = 256;

    private NativeBuffer? _bx, _bnormed, _bquery, _battention, _bresidual, _bgate, _bup;
    private int _batchCapacity;

    /// <summary>
    /// Feeds <paramref name="tokens"/> at positions [start, start + n) in batched passes and returns
    /// the logits for the token after the last one (valid until the next call). Gives the same
    /// logits as feeding the tokens one by one through <see cref="Forward"/>, up to float rounding.
    /// </summary>
    public ReadOnlySpan<float> Prefill(ReadOnlySpan<int> tokens, int startPosition)
    {
        var c = _model.Config;
        if (tokens.IsEmpty) throw new ArgumentException("at least one token is needed", nameof(tokens));
        if (startPosition < 0 || (long)startPosition + tokens.Length > ContextLength)
            throw new ArgumentOutOfRangeException(nameof(startPosition), startPosition,
                $"positions {startPosition}..{startPosition + tokens.Length - 1} must lie between 0 and {ContextLength - 1} (the session's context length)");
        foreach (var token in tokens)
            if ((uint)token >= (uint)c.VocabularySize)
                throw new ArgumentOutOfRangeException(nameof(tokens), token, $"token id must be between 0 and {c.VocabularySize - 1}");

        for (var done = 0; done < tokens.Length; done += MaxPrefillChunk)
        {
            var n = Math.Min(MaxPrefillChunk, tokens.Length - done);
            PrefillChunk(tokens.Slice(done, n), startPosition + done);
        }
        var last = _bx!.Slice((long)(tokens.Length - 1) % MaxPrefillChunk * c.EmbeddingLength, c.EmbeddingLength);
        DecoderSteps.Norm(last, _model.Weights.OutputNorm, c.RmsNormEpsilon, _normed.Span);
        _model.Weights.Output.MatVec(_normed.Span, _logits.Span);
        return _logits.Span;
    }

    private void PrefillChunk(ReadOnlySpan<int> tokens, int start)
    {
        var c = _model.Config;
        var w = _model.Weights;
        var n = tokens.Length;
        EnsureBatch(n);
        int dim = c.EmbeddingLength, qLen = c.QueryLength, kvLen = c.KeyValueLength, ff = c.FeedForwardLength;
        var x = _bx!.Slice(0, n * dim);
        var normed = _bnormed!.Slice(0, n * dim);
        var query = _bquery!.Slice(0, n * qLen);
        var attention = _battention!.Slice(0, n * qLen);
        var residual = _bresidual!.Slice(0, n * dim);
        var gate = _bgate!.Slice(0, n * ff);
        var up = _bup!.Slice(0, n * ff);
        for (var t = 0; t < n; t++) w.TokenEmbedding.DequantizeRow(tokens[t], x.Slice(t * dim, dim));

        for (var l = 0; l < c.LayerCount; l++)
        {
            var layer = w.Layers[l];
            for (var t = 0; t < n; t++)
                DecoderSteps.Norm(x.Slice(t * dim, dim), layer.AttentionNorm, c.RmsNormEpsilon, normed.Slice(t * dim, dim));
            var keys = _cache.KeyRange(l, start, n);
            var values = _cache.ValueRange(l, start, n);
            WeightMatrix.MatMulShared(normed, n, layer.Query, query, layer.Key, keys, layer.Value, values);
            for (var t = 0; t < n; t++)
            {
                var q = query.Slice(t * qLen, qLen);
                var k = keys.Slice(t * kvLen, kvLen);
                if (layer.QueryBias is not null) VectorOps.Add(q, layer.QueryBias.Span);
                if (layer.KeyBias is not null) VectorOps.Add(k, layer.KeyBias.Span);
                if (layer.ValueBias is not null) VectorOps.Add(values.Slice(t * kvLen, kvLen), layer.ValueBias.Span);
                if (layer.QueryNorm is not null && layer.KeyNorm is not null)
                {
                    DecoderSteps.NormHeads(q, c.HeadDim, layer.QueryNorm, c.RmsNormEpsilon);
                    DecoderSteps.NormHeads(k, c.HeadDim, layer.KeyNorm, c.RmsNormEpsilon);
                }
                DecoderSteps.ApplyRope(q, c, start + t, w.RopeInverseFrequencies);
                DecoderSteps.ApplyRope(k, c, start + t, w.RopeInverseFrequencies);
            }
            AttendBatch(l, start, n, query, attention);
            layer.Output.MatMul(attention, residual, n);
            VectorOps.Add(x, residual);

            for (var t = 0; t < n; t++)
                DecoderSteps.Norm(x.Slice(t * dim, dim), layer.FeedForwardNorm, c.RmsNormEpsilon, normed.Slice(t * dim, dim));
            WeightMatrix.MatMulShared(normed, n, layer.Gate, gate, layer.Up, up);
            VectorOps.SiluGate(gate, up);
            layer.Down.MatMul(gate, residual, n);
            VectorOps.Add(x, residual);
        }
    }

    private struct AttendJob
    {
        public float* Query, Output, Keys, Values;
        public int Start, Tokens, QueryLength, HeadCount, KvHeadCount, HeadDim;
        public nint Scratch;
    }

    /// <summary>Attention of each chunk token over its causal prefix, tokens spread over the worker pool.</summary>
    private void AttendBatch(int layer, int start, int n, Span<float> query, Span<float> output)
    {
        var c = _model.Config;
        var keys = _cache.Keys(layer, start + n);
        var values = _cache.Values(layer, start + n);
        fixed (float* q = query)
        fixed (float* o = output)
        fixed (float* k = keys)
        fixed (float* v = values)
        {
            var job = new AttendJob
            {
                Query = q, Output = o, Keys = k, Values = v, Start = start, QueryLength = c.QueryLength,
                HeadCount = c.HeadCount, KvHeadCount = c.KeyValueHeadCount, HeadDim = c.HeadDim,
            };
            if (TiledAttention.CanRun(KernelIsa.Active, c.HeadDim))
            {
                job.Tokens = n;
                WorkerPool.Shared.Run(&TiledItem, &job, TiledAttention.Items(n, c.HeadCount, c.KeyValueHeadCount));
                return;
            }
            _ = Attention.ScoreScratch(start + n); // the caller's own, see ScoreScratch
            WorkerPool.Shared.Run(&AttendItem, &job, n);
        }
    }

    private static void TiledItem(void* context, int item)
    {
        var job = (AttendJob*)context;
        TiledAttention.Run(item, job->Query, job->Output, job->QueryLength, job->Keys, job->Values,
            job->Start, job->Tokens, job->HeadCount, job->KvHeadCount, job->HeadDim);
    }

    private static void AttendItem(void* context, int t)
    {
        var job = (AttendJob*)context;
        var positions = job->Start + t + 1;
        var scores = Attention.ScoreScratch(positions);
        var kvLength = job->KvHeadCount * job->HeadDim;
        Attention.Attend(
            new ReadOnlySpan<float>(job->Query + (long)t * job->QueryLength, job->QueryLength),
            new ReadOnlySpan<float>(job->Keys, positions * kvLength),
            new ReadOnlySpan<float>(job->Values, positions * kvLength),
            positions, job->HeadCount, job->KvHeadCount, job->HeadDim, scores,
            new Span<float>(job->Output + (long)t * job->QueryLength, job->QueryLength));
    }

    private void EnsureBatch(int n)
    {
        if (n <= _batchCapacity) return;
        DisposeBatch();
        var c = _model.Config;
        var capacity = Math.Min(MaxPrefillChunk, Math.Max(n, 16));
        _bx = new NativeBuffer((long)capacity * c.EmbeddingLength);
        _bnormed = new NativeBuffer((long)capacity * c.EmbeddingLength);
        _bquery = new NativeBuffer((long)capacity * c.QueryLength);
        _battention = new NativeBuffer((long)capacity * c.QueryLength);
        _bresidual = new NativeBuffer((long)capacity * c.EmbeddingLength);
        _bgate = new NativeBuffer((long)capacity * c.FeedForwardLength);
        _bup = new NativeBuffer((long)capacity * c.FeedForwardLength);
        _batchCapacity = capacity;
    }

    private void DisposeBatch()
    {
        foreach (var b in new[] { _bx, _bnormed, _bquery, _battention, _bresidual, _bgate, _bup }) b?.Dispose();
        _batchCapacity = 0;
    }
}
