using Bulwark.Engine.Serving.Execution;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>
/// A tiny attention model over a real paged KV store, for scheduler and engine tests that need
/// no Llama weights. Every logit depends on the KV of every earlier position, read through the
/// block table, and unwritten slots hold NaN: a wrong block table, a missed copy-on-write or a
/// read of a slot nobody wrote changes or poisons the logits. Per-token arithmetic does not
/// depend on the batch, so batched and alone runs must agree exactly.
/// </summary>
internal sealed class PagedToyModel : IModelExecutor
{
    private const int Dim = 4;
    private float[] _k = [];
    private float[] _v = [];
    private int _blockSize;

    public PagedToyModel(int vocabSize = 32, int maxContext = 256)
    {
        VocabSize = vocabSize;
        MaxContextLength = maxContext;
    }

    public int VocabSize { get; }

    public int MaxContextLength { get; }

    public int ForwardTokens { get; private set; }

    public long KvBytesPerBlock(int blockSize) => 2L * blockSize * Dim * sizeof(float);

    public void AllocateKvCache(int blockCount, int blockSize)
    {
        _blockSize = blockSize;
        _k = new float[blockCount * blockSize * Dim];
        _v = new float[blockCount * blockSize * Dim];
        Array.Fill(_k, float.NaN);
        Array.Fill(_v, float.NaN);
    }

    public void Execute(StepBatch batch, Span<float> logits)
    {
        foreach (var copy in batch.Copies)
        {
            var n = copy.Slots * Dim;
            Array.Copy(_k, copy.Source * _blockSize * Dim, _k, copy.Destination * _blockSize * Dim, n);
            Array.Copy(_v, copy.Source * _blockSize * Dim, _v, copy.Destination * _blockSize * Dim, n);
        }
        ForwardTokens += batch.TokenCount;
        Span<float> q = stackalloc float[Dim];
        Span<float> o = stackalloc float[Dim];
        for (var s = 0; s < batch.SequenceCount; s++)
        {
            var table = batch.BlockTable(s);
            var start = batch.TokenStart(s);
            for (var j = 0; j < batch.TokenCountOf(s); j++)
            {
                var token = batch.TokenIds[start + j];
                var pos = batch.Positions[start + j];
                var slot = Slot(table, pos);
                for (var d = 0; d < Dim; d++)
                {
                    _k[slot + d] = Feature(token, pos, d, 1);
                    _v[slot + d] = Feature(token, pos, d, 2);
                }
            }
            // The last token's row, and one per draft token before it when the sequence verifies drafts.
            for (var r = 0; r < batch.LogitRowsOf(s); r++)
            {
                var index = batch.LogitTokenIndex(s, r);
                var token = batch.TokenIds[index];
                var pos = batch.Positions[index];
                for (var d = 0; d < Dim; d++)
                    q[d] = Feature(token, pos, d, 3);
                Attend(table, pos + 1, q, o);
                var outRow = logits.Slice((batch.LogitRow(s) + r) * VocabSize, VocabSize);
                for (var t = 0; t < VocabSize; t++)
                {
                    var sum = 0f;
                    for (var d = 0; d < Dim; d++)
                        sum += o[d] * Feature(t, 0, d, 4);
                    outRow[t] = 3f * sum;
                }
            }
        }
    }

    private void Attend(ReadOnlySpan<int> table, int context, ReadOnlySpan<float> q, Span<float> o)
    {
        var max = float.NegativeInfinity;
        for (var p = 0; p < context; p++)
            max = Math.Max(max, Dot(q, p, table));
        o.Clear();
        var sum = 0f;
        for (var p = 0; p < context; p++)
        {
            var w = MathF.Exp(Dot(q, p, table) - max);
            sum += w;
            var slot = Slot(table, p);
            for (var d = 0; d < Dim; d++)
                o[d] += w * _v[slot + d];
        }
        for (var d = 0; d < Dim; d++)
            o[d] /= sum;
    }

    private float Dot(ReadOnlySpan<float> q, int pos, ReadOnlySpan<int> table)
    {
        var slot = Slot(table, pos);
        var sum = 0f;
        for (var d = 0; d < Dim; d++)
            sum += q[d] * _k[slot + d];
        return sum;
    }

    private int Slot(ReadOnlySpan<int> table, int pos) => (table[pos / _blockSize] * _blockSize + pos % _blockSize) * Dim;

    // A fixed pseudo-random feature in [-1, 1) per (token, position, dimension, role).
    private static float Feature(int token, int pos, int d, int role)
    {
        var x = (uint)(token * 73856093) ^ (uint)(pos * 19349663) ^ (uint)(d * 83492791) ^ (uint)(role * 2654435761);
        x ^= x >> 16;
        x *= 0x7feb352d;
        x ^= x >> 15;
        x *= 0x846ca68b;
        x ^= x >> 16;
        return (x & 0xFFFF) / 32768f - 1f;
    }
}
