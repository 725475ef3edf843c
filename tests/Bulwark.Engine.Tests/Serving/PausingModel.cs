using Bulwark.Engine.Serving.Execution;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>Runs freely except for one step, which waits until the test resumes it: a test acts at a known point of the step loop.</summary>
internal sealed class PausingModel(IModelExecutor inner, int pauseAtStep) : IModelExecutor
{
    private readonly ManualResetEventSlim _resume = new(false);
    private int _steps;

    public int VocabSize => inner.VocabSize;
    public int MaxContextLength => inner.MaxContextLength;
    public long KvBytesPerBlock(int blockSize) => inner.KvBytesPerBlock(blockSize);
    public void AllocateKvCache(int blockCount, int blockSize) => inner.AllocateKvCache(blockCount, blockSize);

    public void Resume() => _resume.Set();

    public int EmbeddingLength => inner.EmbeddingLength;

    public void Execute(StepBatch batch, Span<float> logits) => Execute(batch, logits, []);

    public void Execute(StepBatch batch, Span<float> logits, Span<float> pooled)
    {
        if (++_steps == pauseAtStep && !_resume.Wait(TimeSpan.FromSeconds(60))) throw new TimeoutException("the test never resumed the model");
        inner.Execute(batch, logits, pooled);
    }
}
