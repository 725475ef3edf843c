using Bulwark.Engine.Formats;
using Bulwark.Engine.KvCache;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Scheduling;
using Bulwark.Engine.Serving.Speculation;
using Bulwark.Engine.Synthesis;

namespace Bulwark.Engine.Tests.Serving.Speculation;

/// <summary>
/// A verification step computes [last token, drafts] in one pass, yet each of its logit rows must be the row
/// plain decoding computes for that position one token at a time: otherwise a near tie could make speculative
/// greedy output drift from plain output. Attention is the same kernel (verification tokens attend token by
/// token) and the quantized matmuls sum integers per token whatever the tile, so Q8_0/Q4_0 rows are equal bit
/// for bit. Float32 weights are equal to rounding only: the float kernel sums one token with two FMA chains and
/// four tokens with one chain each (Kernels/Cpu/FloatKernels.cs), as it does when plain decode steps batch
/// several sequences.
/// </summary>
public class VerificationLogitsTests
{
    [Theory]
    [InlineData(GgmlType.F32, 16, false)]
    [InlineData(GgmlType.Q8_0, 16, true)]
    [InlineData(GgmlType.Q4_0, 4, true)]
    public void EachVerificationRowEqualsDecodingThatPositionAlone(GgmlType type, int blockSize, bool bitExact)
    {
        var path = SyntheticGguf.Write(new SyntheticModelSpec { Vocab = 300, Dim = 256, Heads = 4, KvHeads = 2, FeedForward = 512, Layers = 4, Context = 512, Seed = 12 });
        using var model = ModelLoader.Load(path, new ModelLoadOptions { QuantizeTo = type == GgmlType.F32 ? null : type });
        var random = new Random(3);
        var prompt = Enumerable.Range(0, 300).Select(_ => random.Next(300)).ToArray();
        int[] next = [.. Enumerable.Range(0, 7).Select(_ => random.Next(300))];

        var alone = new Runner(model, blockSize, prompt);
        var expected = new List<float[]>();
        foreach (var token in next)
        {
            alone.Seq.Append(token);
            expected.Add(alone.Step()[0]);
        }

        var verifying = new Runner(model, blockSize, prompt);
        verifying.Seq.Append(next[0]);
        next.AsSpan(1).CopyTo(verifying.Seq.DraftBuffer(next.Length - 1));
        verifying.Seq.SetDraftCount(next.Length - 1);
        var rows = verifying.Step();
        Assert.Equal(next.Length, rows.Count);
        for (var i = 0; i < rows.Count; i++)
        {
            if (bitExact)
            {
                Assert.True(expected[i].AsSpan().SequenceEqual(rows[i]), $"row {i} differs from decoding position {prompt.Length + i} alone");
                continue;
            }
            var scale = Math.Max(1f, expected[i].Max(MathF.Abs));
            for (var v = 0; v < expected[i].Length; v++)
                Assert.True(MathF.Abs(expected[i][v] - rows[i][v]) <= 1e-5f * scale, $"row {i} logit {v}: {rows[i][v]} vs {expected[i][v]} decoded alone");
        }
    }

    /// <summary>A prompt prefilled through the scheduler, then steps that return each logit row.</summary>
    private sealed class Runner
    {
        private readonly PagedLlamaExecutor _executor;
        private readonly Scheduler _scheduler;
        private readonly StepBatch _batch = new();

        public Runner(Bulwark.Engine.Model.LlamaModel model, int blockSize, int[] prompt)
        {
            _executor = new PagedLlamaExecutor(model);
            _executor.AllocateKvCache(128, blockSize);
            _executor.FillKvCache(float.NaN);
            _scheduler = new Scheduler(new SchedulerOptions { MaxBatchedTokens = 64, MaxPrefillChunk = 64 }, new BlockAllocator(128, blockSize, prefixCaching: false));
            Seq = new Sequence(1, prompt, 64, 0, 0, BlockHash.Root("")) { Speculation = new SpeculativeConfig() };
            _scheduler.Add(Seq);
            while (Seq.ComputedCount < Seq.Count)
                Step();
        }

        public Sequence Seq { get; }

        public List<float[]> Step()
        {
            var step = _scheduler.Schedule();
            _batch.Load(step);
            var vocab = _executor.VocabSize;
            var logits = new float[_batch.LogitRowCount * vocab];
            _executor.Execute(_batch, logits);
            _scheduler.Complete(step);
            var rows = Enumerable.Range(0, _batch.LogitRowCount).Select(r => logits.AsSpan(r * vocab, vocab).ToArray()).ToList();
            if (Seq.DraftCount > 0)
                _scheduler.SettleDrafts(Seq, 0);
            return rows;
        }
    }
}
