namespace Bulwark.Engine.Serving.Execution;

/// <summary>
/// Runs one batched forward step over a paged KV cache: the engine's only view of a model.
/// Implementations keep the KV blocks; the engine decides which block holds which positions.
/// </summary>
public interface IModelExecutor
{
    int VocabSize { get; }

    /// <summary>Longest sequence (prompt + output) the model accepts.</summary>
    int MaxContextLength { get; }

    /// <summary>Memory one block of <paramref name="blockSize"/> token slots takes over all layers (K and V).</summary>
    long KvBytesPerBlock(int blockSize);

    /// <summary>Creates the block pool; called once before the first step.</summary>
    void AllocateKvCache(int blockCount, int blockSize);

    /// <summary>
    /// Performs the batch's block copies, writes K/V of every batch token into its block slot,
    /// and writes the logits of each sequence's last token that has a logits row into
    /// <paramref name="logits"/> (row-major, <see cref="StepBatch.LogitRowCount"/> × VocabSize).
    /// </summary>
    void Execute(StepBatch batch, Span<float> logits);

    /// <summary>
    /// When every layer attends only to the last KvWindow positions (Mistral v0.1's sliding window), the positions
    /// before a sequence's window are never read again and the engine releases their KV blocks; 0 (the default)
    /// when some layer sees the whole context. Block-table entries of released blocks are −1; positions at or after
    /// the window of every batch token are the only ones an executor may read.
    /// </summary>
    int KvWindow => 0;

    /// <summary>Width of the hidden states an embedding pools; 0 when this executor computes no embeddings.</summary>
    int EmbeddingLength => 0;

    /// <summary>
    /// <see cref="Execute(StepBatch, Span{float})"/>, and for each embedding input of the batch the sum of the final
    /// norm's output over its <see cref="StepBatch.PooledTokens"/> into its <see cref="StepBatch.PoolRow"/> of
    /// <paramref name="pooled"/> (row-major, <see cref="StepBatch.PooledRowCount"/> × <see cref="EmbeddingLength"/>; a zero row when it pools no token this step).
    /// </summary>
    void Execute(StepBatch batch, Span<float> logits, Span<float> pooled)
    {
        if (batch.PooledRowCount > 0)
            throw new NotSupportedException("this model executor computes no embeddings");
        Execute(batch, logits);
    }

    /// <summary>
    /// Clears the KV of <paramref name="blocks"/> (their previous owners ended): called before a block
    /// changes hands and, off the decode path, for freed blocks. An executor that keeps KV must clear it.
    /// </summary>
    void ScrubKvBlocks(ReadOnlySpan<int> blocks) { }
}
