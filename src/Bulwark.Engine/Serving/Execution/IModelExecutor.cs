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
    /// Clears the KV of <paramref name="blocks"/> (their previous owners ended): called before a block
    /// changes hands and, off the decode path, for freed blocks. An executor that keeps KV must clear it.
    /// </summary>
    void ScrubKvBlocks(ReadOnlySpan<int> blocks) { }
}
