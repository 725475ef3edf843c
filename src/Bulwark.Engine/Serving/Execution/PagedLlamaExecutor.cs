using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.KvCache;
using Bulwark.Engine.Memory;
using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Weights;

namespace Bulwark.Engine.Serving.Execution;

/// <summary>
/// A Llama-family decoder run over a paged KV cache: one forward pass per step for all batch
/// tokens of all sequences. Every weight multiplication is one <see cref="WeightMatrix.MatMul"/>
/// over the whole batch, so a GEMM kernel reuses each weight block across tokens; attention
/// runs per sequence over its own block table. Same arithmetic as <see cref="Model.Reference.LlamaSession"/>,
/// which is the single-sequence reference it is tested against.
/// </summary>
/// <remarks>Not thread-safe: the engine's step loop is its only caller. Does not own the model.</remarks>
public sealed unsafe class PagedLlamaExecutor : IModelExecutor, IDisposable
{
    private readonly LlamaModel _model;
    private readonly LlamaConfig _config;
    private readonly StepActivations _act;

    /// <summary>The mixture-of-experts MLP and its scratch (Mixtral, Qwen3-MoE); null for a dense model.</summary>
    private readonly MixtureOfExperts? _experts;

    /// <summary>RoPE frequencies for <see cref="MaxContextLength"/> (LongRoPE picks its set by it, as llama.cpp by n_ctx per sequence).</summary>
    private readonly float[] _ropeFrequencies;
    private KvBlockStore? _kv;

    // Per step, for attention on the worker pool: each token's sequence, and every sequence's block
    // table flattened into native memory (workers cannot hold the batch's managed spans).
    private int* _tokenSequence, _tableStart, _tableLength, _tables, _plan;
    private int _tokenCapacity, _sequenceCapacity, _tableCapacity, _planCapacity;

    /// <summary>Attention work items of the current step's plan (<see cref="PlanTiles"/>); 0 when it attends token by token.</summary>
    private int _planItems;

    /// <param name="maxContextLength">Caps the model's context length (positions per sequence); null keeps it.</param>
    /// <param name="kvCacheType">How the KV blocks store keys and values (<see cref="KvCacheType.F16"/>: half the memory).</param>
    public PagedLlamaExecutor(LlamaModel model, int? maxContextLength = null, KvCacheType kvCacheType = KvCacheType.F32)
    {
        if (!Enum.IsDefined(kvCacheType)) throw new ArgumentOutOfRangeException(nameof(kvCacheType), kvCacheType, "KV cache type must be F32 or F16");
        KvCacheType = kvCacheType;
        _model = model;
        _config = model.Config;
        var max = maxContextLength ?? _config.ContextLength;
        if (max < 1 || max > _config.ContextLength)
            throw new ArgumentOutOfRangeException(nameof(maxContextLength), max, $"context length must be between 1 and the model's {_config.ContextLength}; got {max}");
        if (kvCacheType == KvCacheType.F16 && _config.Gemma is { AttentionLogitSoftCap: > 0 })
            throw new NotSupportedException("attention soft-capping (Gemma 2) runs with an f32 KV cache only; use --kv-cache-dtype f32");
        MaxContextLength = max;
        _act = new StepActivations(_config);
        _experts = _config.IsMixtureOfExperts ? new MixtureOfExperts(_config) : null;
        _ropeFrequencies = model.Weights.RopeInverseFrequenciesFor(max);
    }

    public int VocabSize => _config.VocabularySize;

    public int MaxContextLength { get; }

    public KvCacheType KvCacheType { get; }

    public long KvBytesPerBlock(int blockSize) => KvBlockStore.BytesPerBlock(_config.LayerCount, blockSize, _config.KeyValueLength, KvCacheType);

    public void AllocateKvCache(int blockCount, int blockSize)
    {
        if (_kv is not null)
            throw new InvalidOperationException("the KV cache is already allocated");
        _kv = new KvBlockStore(_config.LayerCount, blockCount, blockSize, _config.KeyValueLength, KvCacheType);
    }

    /// <summary>Fills every KV slot with <paramref name="value"/>; tests poison the cache with NaN to catch reads of unwritten slots.</summary>
    internal void FillKvCache(float value) => Kv.Fill(value);

    private KvBlockStore Kv => _kv ?? throw new InvalidOperationException("AllocateKvCache must be called before the first step");

    /// <summary>The KV store (tests read it to see what a request left behind).</summary>
    internal KvBlockStore KvStore => Kv;

    /// <summary>What scrubbing writes: 0, or NaN in tests that must still see any read of a slot nobody wrote.</summary>
    internal float ScrubValue { get; set; }

    public void ScrubKvBlocks(ReadOnlySpan<int> blocks)
    {
        var kv = Kv;
        foreach (var block in blocks) kv.Clear(block, ScrubValue);
    }

    public int EmbeddingLength => _config.EmbeddingLength;

    public int KvWindow => _config.EveryLayerWindowed ? _config.SlidingWindow : 0;

    public void Execute(StepBatch batch, Span<float> logits) => Execute(batch, logits, []);

    public void Execute(StepBatch batch, Span<float> logits, Span<float> pooled)
    {
        var kv = Kv;
        var c = _config;
        var w = _model.Weights;
        var tokens = batch.TokenCount;
        var rows = batch.LogitRowCount;
        if (logits.Length != rows * c.VocabularySize)
            throw new ArgumentException($"logits must hold {rows} rows of {c.VocabularySize}; got {logits.Length} floats", nameof(logits));
        if (pooled.Length != batch.PooledRowCount * c.EmbeddingLength)
            throw new ArgumentException($"pooled must hold {batch.PooledRowCount} rows of {c.EmbeddingLength}; got {pooled.Length} floats", nameof(pooled));
        CheckSequences(batch, kv);

        // Copies first: a sequence that got a private copy of a shared block writes into the copy below.
        foreach (var copy in batch.Copies)
            kv.Copy(copy);
        if (tokens == 0)
            return;
        _act.Ensure(tokens, rows);

        var dim = c.EmbeddingLength;
        var hidden = _act.Hidden.Span[..(tokens * dim)];
        var normed = _act.Normed.Span[..(tokens * dim)];
        var ids = batch.TokenIds;
        for (var t = 0; t < tokens; t++)
            w.TokenEmbedding.DequantizeRow(ids[t], hidden.Slice(t * dim, dim));
        if (c.Gemma is { } gemma) VectorOps.Scale(hidden, gemma.EmbeddingScale);
        FillRopeTables(batch.Positions, _ropeFrequencies);
        var ropeFilled = _ropeFrequencies;
        var positions = FlattenTables(batch);
        // The same for every layer: planned once per step. Soft-capped scores (Gemma 2) attend token by token.
        var softCap = c.Gemma?.AttentionLogitSoftCap ?? 0;
        _planItems = kv.Type != KvCacheType.F16 && softCap == 0 && TiledAttention.CanRun(KernelIsa.Active, c.HeadDim) ? PlanTiles(batch, positions) : 0;
        var queryFactor = GemmaSteps.QueryFactor(c);

        for (var l = 0; l < c.LayerCount; l++)
        {
            var layer = w.Layers[l];
            var q = _act.Query.Span[..(tokens * layer.Query.Rows)];
            var k = _act.Key.Span[..(tokens * layer.Key.Rows)];
            var v = _act.Value.Span[..(tokens * layer.Value.Rows)];
            WeightMatrix.MatMulSharedNormed(hidden, layer.AttentionNorm, c.RmsNormEpsilon, normed, tokens, layer.Query, q, layer.Key, k, layer.Value, v);
            AddBias(q, layer.QueryBias, tokens);
            AddBias(k, layer.KeyBias, tokens);
            AddBias(v, layer.ValueBias, tokens);
            if (layer.QueryNorm is not null && layer.KeyNorm is not null)
            {
                DecoderSteps.NormHeads(q, c.HeadDim, layer.QueryNorm, c.RmsNormEpsilon);
                DecoderSteps.NormHeads(k, c.HeadDim, layer.KeyNorm, c.RmsNormEpsilon);
            }
            if (c.UsesRope(l))
            {
                // Gemma 3's local layers rotate by another base: the tables follow the layer's frequencies.
                if (w.RopeFor(c, l, _ropeFrequencies) is var rope && !ReferenceEquals(rope, ropeFilled))
                {
                    FillRopeTables(batch.Positions, rope);
                    ropeFilled = rope;
                }
                ApplyRope(q, c.QueryLength, tokens);
                ApplyRope(k, c.KeyValueLength, tokens);
            }
            StoreKv(batch, kv, l, k, v);
            if (softCap == 0 && queryFactor != 1f) VectorOps.Scale(q, queryFactor);
            Attend(batch, kv, l, positions);

            var attention = _act.Attention.Span[..(tokens * c.QueryLength)];
            var delta = _act.Delta.Span[..(tokens * dim)];
            layer.Output.MatMul(attention, delta, tokens);
            if (layer.PostAttentionNorm is not null) NormRows(delta, layer.PostAttentionNorm, delta, tokens);
            VectorOps.Add(hidden, delta);

            if (layer.Experts is { } experts)
            {
                NormRows(hidden, layer.FeedForwardNorm, normed, tokens);
                _experts!.Apply(experts, normed, tokens, delta);
            }
            else
            {
                var gate = _act.Gate.Span[..(tokens * c.FeedForwardLength)];
                var up = _act.Up.Span[..(tokens * c.FeedForwardLength)];
                WeightMatrix.MatMulSharedNormed(hidden, layer.FeedForwardNorm, c.RmsNormEpsilon, normed, tokens, layer.Gate!, gate, layer.Up!, up);
                DecoderSteps.Gate(gate, up, gelu: c.Gemma is not null);
                layer.Down!.MatMul(gate, delta, tokens);
            }
            if (layer.PostFeedForwardNorm is not null) NormRows(delta, layer.PostFeedForwardNorm, delta, tokens);
            VectorOps.Add(hidden, delta);
        }

        // The layers are done with the normed scratch: embedding inputs pool their final-norm states through it.
        if (batch.PooledRowCount > 0)
            Pool(batch, hidden, normed, pooled);

        // Logits only for each sequence's last token (and its drafts when it verifies some), and only where the sequence needs them.
        if (rows == 0)
            return;
        var last = _act.LastHidden.Span[..(rows * dim)];
        for (var s = 0; s < batch.SequenceCount; s++)
        {
            var first = batch.LogitRow(s);
            for (var r = 0; r < batch.LogitRowsOf(s); r++)
            {
                var index = batch.LogitTokenIndex(s, r);
                DecoderSteps.Norm(hidden.Slice(index * dim, dim), w.OutputNorm, c.RmsNormEpsilon, last.Slice((first + r) * dim, dim));
            }
        }
        w.Output.MatMul(last, logits, rows);
        if (c.Gemma is { } capped) GemmaSteps.SoftCap(logits, capped.FinalLogitSoftCap);
    }

    /// <summary>Per embedding input, the sum of the final norm's output over the tokens its pooling selects in this step.</summary>
    private void Pool(StepBatch batch, ReadOnlySpan<float> hidden, Span<float> scratch, Span<float> pooled)
    {
        var dim = _config.EmbeddingLength;
        for (var s = 0; s < batch.SequenceCount; s++)
        {
            var row = batch.PoolRow(s);
            if (row < 0)
                continue;
            var output = pooled.Slice(row * dim, dim);
            output.Clear();
            var (start, count) = batch.PooledTokens(s);
            for (var t = start; t < start + count; t++)
            {
                var normed = scratch.Slice(t * dim, dim);
                DecoderSteps.Norm(hidden.Slice(t * dim, dim), _model.Weights.OutputNorm, _config.RmsNormEpsilon, normed);
                VectorOps.Add(output, normed);
            }
        }
    }

    private void CheckSequences(StepBatch batch, KvBlockStore kv)
    {
        for (var s = 0; s < batch.SequenceCount; s++)
        {
            var context = batch.ContextLength(s);
            if (context > MaxContextLength)
                throw new ArgumentOutOfRangeException(nameof(batch), $"sequence {s} reaches position {context - 1}; the context length is {MaxContextLength}");
            if ((long)batch.BlockTable(s).Length * kv.BlockSize < context)
                throw new ArgumentException($"sequence {s} has {batch.BlockTable(s).Length} KV blocks of {kv.BlockSize} slots for {context} positions", nameof(batch));
            // Blocks released by the window (−1) only before the window of the sequence's first position in this step.
            var released = KvWindow > 0 ? Math.Max(0, batch.StartPosition(s) - KvWindow + 1) / kv.BlockSize : 0;
            var table = batch.BlockTable(s);
            for (var b = 0; b < table.Length; b++)
                if ((uint)table[b] >= (uint)kv.BlockCount && !(b < released && table[b] == Scheduling.BlockAllocator.ReleasedBlock))
                    throw new ArgumentOutOfRangeException(nameof(batch), $"KV block id must be below {kv.BlockCount}; got {table[b]}");
        }
    }

    private void NormRows(ReadOnlySpan<float> x, NativeBuffer weight, Span<float> output, int tokens)
    {
        var dim = _config.EmbeddingLength;
        for (var t = 0; t < tokens; t++)
            DecoderSteps.Norm(x.Slice(t * dim, dim), weight, _config.RmsNormEpsilon, output.Slice(t * dim, dim));
    }

    /// <summary>The bias on every token's row (Qwen2's q/k/v biases).</summary>
    private static void AddBias(Span<float> y, NativeBuffer? bias, int tokens)
    {
        if (bias is null)
            return;
        var b = bias.Span;
        var rows = y.Length / tokens;
        for (var t = 0; t < tokens; t++)
            VectorOps.Add(y.Slice(t * rows, rows), b);
    }

    // Perf: positions are the same in every layer, so cos/sin are computed once per step instead of
    // once per layer and head. Same float operations as Rope.Apply, so the results are identical.
    private void FillRopeTables(ReadOnlySpan<int> positions, ReadOnlySpan<float> inverseFrequencies)
    {
        var half = _config.HeadDim / 2;
        var cos = _act.Cos.Span;
        var sin = _act.Sin.Span;
        for (var t = 0; t < positions.Length; t++)
        {
            for (var i = 0; i < half; i++)
            {
                var angle = positions[t] * inverseFrequencies[i];
                cos[t * half + i] = MathF.Cos(angle);
                sin[t * half + i] = MathF.Sin(angle);
            }
        }
    }

    private void ApplyRope(Span<float> rows, int rowLength, int tokens)
    {
        var headDim = _config.HeadDim;
        var half = headDim / 2;
        var adjacent = _config.RopeLayout == RopeLayout.AdjacentPairs;
        var cosTable = _act.Cos.Span;
        var sinTable = _act.Sin.Span;
        for (var t = 0; t < tokens; t++)
        {
            var cos = cosTable.Slice(t * half, half);
            var sin = sinTable.Slice(t * half, half);
            var row = rows.Slice(t * rowLength, rowLength);
            for (var start = 0; start < rowLength; start += headDim)
            {
                var h = row.Slice(start, headDim);
                for (var i = 0; i < half; i++)
                {
                    var (a, b) = adjacent ? (2 * i, 2 * i + 1) : (i, i + half);
                    var x0 = h[a];
                    var x1 = h[b];
                    h[a] = x0 * cos[i] - x1 * sin[i];
                    h[b] = x0 * sin[i] + x1 * cos[i];
                }
            }
        }
        // LongRoPE scales cos and sin: the same products as DecoderSteps.ApplyRope's scaling of the rotated vector.
        if (_config.RopeScaling.AttentionFactor != 1f) VectorOps.Scale(rows[..(tokens * rowLength)], _config.RopeScaling.AttentionFactor);
    }

    /// <summary>Writes each batch token's K and V into its slot, before any query of the step reads them.</summary>
    private static void StoreKv(StepBatch batch, KvBlockStore kv, int layer, ReadOnlySpan<float> k, ReadOnlySpan<float> v)
    {
        var kvLength = kv.KvLength;
        var half = kv.Type == KvCacheType.F16;
        var keys = half ? null : kv.Keys(layer);
        var values = half ? null : kv.Values(layer);
        var halfKeys = half ? kv.HalfKeys(layer) : null;
        var halfValues = half ? kv.HalfValues(layer) : null;
        var positions = batch.Positions;
        for (var s = 0; s < batch.SequenceCount; s++)
        {
            var table = batch.BlockTable(s);
            var end = batch.TokenStart(s) + batch.TokenCountOf(s);
            for (var t = batch.TokenStart(s); t < end; t++)
            {
                var slot = kv.SlotOffset(table, positions[t]);
                if (half)
                {
                    System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(k.Slice(t * kvLength, kvLength), new Span<Half>(halfKeys + slot, kvLength));
                    System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(v.Slice(t * kvLength, kvLength), new Span<Half>(halfValues + slot, kvLength));
                    continue;
                }
                k.Slice(t * kvLength, kvLength).CopyTo(new Span<float>(keys + slot, kvLength));
                v.Slice(t * kvLength, kvLength).CopyTo(new Span<float>(values + slot, kvLength));
            }
        }
    }

    /// <summary>Copies the batch's block tables and token→sequence map to native memory; returns the positions, pinned likewise.</summary>
    private int* FlattenTables(StepBatch batch)
    {
        var tokens = batch.TokenCount;
        var sequences = batch.SequenceCount;
        var tableInts = 0;
        for (var s = 0; s < sequences; s++) tableInts += batch.BlockTable(s).Length;
        Grow(ref _tokenSequence, ref _tokenCapacity, 2 * tokens); // token → sequence, then positions
        Grow(ref _tableStart, ref _sequenceCapacity, 2 * sequences); // start, then length
        Grow(ref _tables, ref _tableCapacity, tableInts);
        _tableLength = _tableStart + sequences;
        var offset = 0;
        for (var s = 0; s < sequences; s++)
        {
            var table = batch.BlockTable(s);
            table.CopyTo(new Span<int>(_tables + offset, table.Length));
            _tableStart[s] = offset;
            _tableLength[s] = table.Length;
            offset += table.Length;
            var end = batch.TokenStart(s) + batch.TokenCountOf(s);
            for (var t = batch.TokenStart(s); t < end; t++) _tokenSequence[t] = s;
        }
        var positions = _tokenSequence + tokens;
        batch.Positions.CopyTo(new Span<int>(positions, tokens));
        return positions;
    }

    private static void Grow(ref int* buffer, ref int capacity, int needed)
    {
        if (needed <= capacity) return;
        if (buffer != null) System.Runtime.InteropServices.NativeMemory.Free(buffer);
        capacity = Math.Max(needed, Math.Max(64, capacity * 2));
        buffer = (int*)System.Runtime.InteropServices.NativeMemory.Alloc((nuint)capacity, sizeof(int));
    }

    private struct AttendJob
    {
        public void* Keys, Values;
        public float* Query, Output;
        public bool Half;
        public int* TokenSequence, Positions, TableStart, TableLength, Tables;
        public long BlockStride;
        public int BlockSize, KvLength, QueryLength, HeadCount, KvHeadCount, HeadDim;

        /// <summary>The layer's sliding window (0: none); Gemma 2's score cap (0: none), its attention scale, and the step's longest context.</summary>
        public int Window;
        public float SoftCap, Scale;
        public int MaxContext;

        /// <summary>With tiles: per work item, its sequence (−1: one token alone) and its tile or token index; per sequence, its first token and count.</summary>
        public int* ItemSequence, ItemLocal, SequenceStart, SequenceCount;
    }

    /// <summary>Each token's causal attention over its own sequence's blocks, tokens spread over the worker pool.</summary>
    private void Attend(StepBatch batch, KvBlockStore kv, int layer, int* positions)
    {
        var c = _config;
        var job = new AttendJob
        {
            Half = kv.Type == KvCacheType.F16,
            Keys = kv.Type == KvCacheType.F16 ? kv.HalfKeys(layer) : kv.Keys(layer),
            Values = kv.Type == KvCacheType.F16 ? kv.HalfValues(layer) : kv.Values(layer),
            Query = _act.Query.Pointer, Output = _act.Attention.Pointer,
            TokenSequence = _tokenSequence, Positions = positions, TableStart = _tableStart, TableLength = _tableLength, Tables = _tables,
            BlockStride = kv.BlockStride, BlockSize = kv.BlockSize, KvLength = kv.KvLength, QueryLength = c.QueryLength,
            HeadCount = c.HeadCount, KvHeadCount = c.KeyValueHeadCount, HeadDim = c.HeadDim,
            Window = c.WindowOf(layer), SoftCap = c.Gemma?.AttentionLogitSoftCap ?? 0, Scale = c.Gemma?.AttentionScale ?? 0,
            MaxContext = LongestContext(batch),
        };
        _ = Kernels.Cpu.Attention.ScoreScratch(ScratchLength(&job)); // the caller's own, see ScoreScratch
        if (_planItems > 0)
        {
            job.ItemSequence = _plan;
            job.ItemLocal = _plan + _planItems;
            job.SequenceStart = job.ItemLocal + _planItems;
            job.SequenceCount = job.SequenceStart + batch.SequenceCount;
            Kernels.Cpu.WorkerPool.Shared.Run(&PlannedItem, &job, _planItems);
            return;
        }
        // Perf: one item per token and KV head, so a decode step's single token spreads its heads over
        // every thread instead of running them all on one while the others wait.
        // Soft-capped attention (Gemma 2) runs whole tokens.
        if (job.SoftCap > 0)
            Kernels.Cpu.WorkerPool.Shared.Run(&AttendItem, &job, batch.TokenCount);
        else
            Kernels.Cpu.WorkerPool.Shared.Run(&AttendHeadsItem, &job, batch.TokenCount * c.KeyValueHeadCount);
    }

    /// <summary>
    /// Work items of a step whose cache is f32: a sequence with several tokens here (a prompt chunk)
    /// attends in tiles (<see cref="TiledAttention"/>), a sequence with one token (decoding) token by token.
    /// Fills <see cref="_plan"/> with, per item, its sequence (−1: one token alone) and its tile or token
    /// index, then per sequence its first token and count; returns the number of items.
    /// </summary>
    private int PlanTiles(StepBatch batch, int* positions)
    {
        var c = _config;
        var sequences = batch.SequenceCount;
        var items = 0;
        var anyTiled = false;
        for (var s = 0; s < sequences; s++)
        {
            var tiled = Tiled(batch, positions, s);
            anyTiled |= tiled;
            items += tiled ? TiledAttention.Items(batch.TokenCountOf(s), c.HeadCount, c.KeyValueHeadCount) : batch.TokenCountOf(s);
        }
        if (!anyTiled)
            return 0; // only single tokens (decoding): attended head group by head group, see Attend
        Grow(ref _plan, ref _planCapacity, 2 * items + 2 * sequences);
        var itemSequence = _plan;
        var itemLocal = _plan + items;
        var sequenceStart = itemLocal + items;
        var sequenceCount = sequenceStart + sequences;
        var item = 0;
        for (var s = 0; s < sequences; s++)
        {
            var start = batch.TokenStart(s);
            var count = batch.TokenCountOf(s);
            sequenceStart[s] = start;
            sequenceCount[s] = count;
            if (Tiled(batch, positions, s))
            {
                var tiles = TiledAttention.Items(count, c.HeadCount, c.KeyValueHeadCount);
                for (var i = 0; i < tiles; i++, item++)
                {
                    itemSequence[item] = s;
                    itemLocal[item] = i;
                }
                continue;
            }
            for (var t = start; t < start + count; t++, item++)
            {
                itemSequence[item] = -1;
                itemLocal[item] = t;
            }
        }
        return items;
    }

    /// <summary>
    /// Tiles for a sequence with at least two tokens in the step at consecutive positions, unless it verifies
    /// draft tokens: those attend token by token, as each would when decoded alone, so a verified position's
    /// logits are bit for bit those of plain decoding (tiles sum in another order) and speculative greedy output
    /// cannot drift from plain output on a near tie.
    /// </summary>
    private static bool Tiled(StepBatch batch, int* positions, int s)
    {
        var count = batch.TokenCountOf(s);
        if (count < 2 || batch.LogitRowsOf(s) > 1) return false;
        var start = batch.TokenStart(s);
        for (var t = start + 1; t < start + count; t++)
            if (positions[t] != positions[t - 1] + 1) return false;
        return true;
    }

    private static void PlannedItem(void* context, int item)
    {
        var job = (AttendJob*)context;
        var sequence = job->ItemSequence[item];
        if (sequence < 0)
        {
            AttendItem(context, job->ItemLocal[item]);
            return;
        }
        var first = job->SequenceStart[sequence];
        var planes = new TiledAttention.KvPlanes((float*)job->Keys, (float*)job->Values, job->Tables + job->TableStart[sequence], job->BlockSize, job->BlockStride);
        TiledAttention.Run(job->ItemLocal[item], job->Query + (long)first * job->QueryLength, job->Output + (long)first * job->QueryLength, job->QueryLength,
            planes, job->Positions[first], job->SequenceCount[sequence], job->HeadCount, job->KvHeadCount, job->HeadDim, job->Window);
    }

    private static int LongestContext(StepBatch batch)
    {
        var longest = 1;
        for (var s = 0; s < batch.SequenceCount; s++) longest = Math.Max(longest, batch.ContextLength(s));
        return longest;
    }

    /// <summary>Scores of one block, and for an F16 cache a block of keys and one of values converted to f32.</summary>
    private static int ScratchLength(AttendJob* job) =>
        job->SoftCap > 0 ? job->MaxContext : job->Half ? PagedAttention.HalfScratchLength(job->BlockSize, job->HeadDim) : job->BlockSize;

    private static void AttendItem(void* context, int t) => AttendHeads((AttendJob*)context, t, 0, ((AttendJob*)context)->KvHeadCount);

    /// <summary>Item = token × KV head: that KV head's group of query heads for that token (the same arithmetic per head as all at once).</summary>
    private static void AttendHeadsItem(void* context, int item)
    {
        var job = (AttendJob*)context;
        AttendHeads(job, item / job->KvHeadCount, item % job->KvHeadCount, 1);
    }

    /// <summary>Token t's query heads of KV heads [kvHead, kvHead + kvHeads): the query, output and cache planes offset to that group.</summary>
    private static void AttendHeads(AttendJob* job, int t, int kvHead, int kvHeads)
    {
        var scores = Kernels.Cpu.Attention.ScoreScratch(ScratchLength(job));
        var sequence = job->TokenSequence[t];
        var table = new ReadOnlySpan<int>(job->Tables + job->TableStart[sequence], job->TableLength[sequence]);
        // Causal: token t sees its own position and every earlier one of its sequence (within the layer's window).
        var position = job->Positions[t];
        var first = job->Window > 0 ? Math.Max(0, position - job->Window + 1) : 0;
        if (job->SoftCap > 0)
        {
            // Soft-capped attention (Gemma 2) takes whole tokens: Attend dispatches it by AttendItem (every KV head).
            System.Diagnostics.Debug.Assert(kvHead == 0 && kvHeads == job->KvHeadCount);
            var planes = new TiledAttention.KvPlanes((float*)job->Keys, (float*)job->Values, job->Tables + job->TableStart[sequence], job->BlockSize, job->BlockStride);
            SoftCappedAttention.Attend(job->Query + (long)t * job->QueryLength, planes, first, position, job->HeadCount, job->KvHeadCount, job->HeadDim,
                job->Scale, job->SoftCap, job->Output + (long)t * job->QueryLength, scores);
            return;
        }
        var group = job->HeadCount / job->KvHeadCount;
        var headOffset = (long)t * job->QueryLength + kvHead * group * job->HeadDim;
        var kvOffset = kvHead * job->HeadDim;
        if (job->Half)
            PagedAttention.AttendHalf((Half*)job->Keys + kvOffset, (Half*)job->Values + kvOffset, job->BlockSize, job->BlockStride, job->KvLength, table,
                job->Query + headOffset, position + 1, kvHeads * group, kvHeads, job->HeadDim, job->Output + headOffset, scores, first);
        else
            PagedAttention.Attend((float*)job->Keys + kvOffset, (float*)job->Values + kvOffset, job->BlockSize, job->BlockStride, job->KvLength, table,
                job->Query + headOffset, position + 1, kvHeads * group, kvHeads, job->HeadDim, job->Output + headOffset, scores, first);
    }

    public void Dispose()
    {
        _kv?.Dispose();
        _act.Dispose();
        foreach (var buffer in new[] { (nint)_tokenSequence, (nint)_tableStart, (nint)_tables, (nint)_plan })
            if (buffer != 0) System.Runtime.InteropServices.NativeMemory.Free((void*)buffer);
        _tokenSequence = _tableStart = _tableLength = _tables = _plan = null;
    }
}
