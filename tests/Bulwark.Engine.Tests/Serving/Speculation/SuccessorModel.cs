using Bulwark.Engine.Serving.Execution;

namespace Bulwark.Engine.Tests.Serving.Speculation;

/// <summary>
/// A model whose greedy choice is known: after token x it puts its largest logit on (x + 1) mod V, and small
/// distinct logits on the rest. Lets a test build prompts whose drafts must all be accepted, or all rejected.
/// Keeps no KV; writes a row for every logit row the batch asks for, like a real model verifying drafts.
/// </summary>
internal sealed class SuccessorModel(int vocabSize = 32) : IModelExecutor
{
    public int VocabSize { get; } = vocabSize;

    public int MaxContextLength => 512;

    public int ForwardPasses { get; private set; }

    public long KvBytesPerBlock(int blockSize) => blockSize * 8L;

    public void AllocateKvCache(int blockCount, int blockSize) { }

    public void Execute(StepBatch batch, Span<float> logits)
    {
        ForwardPasses++;
        for (var s = 0; s < batch.SequenceCount; s++)
            for (var r = 0; r < batch.LogitRowsOf(s); r++)
            {
                var last = batch.TokenIds[batch.LogitTokenIndex(s, r)];
                var row = logits.Slice((batch.LogitRow(s) + r) * VocabSize, VocabSize);
                for (var t = 0; t < VocabSize; t++)
                    row[t] = 0.01f * ((t * 7 + last) % VocabSize);
                row[(last + 1) % VocabSize] = 5f;
            }
    }
}
