using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Config;

namespace Bulwark.Engine.Serving.Embeddings;

/// <summary>
/// An embedding request's vector as the steps compute it: each step adds the executor's sum of the
/// selected tokens' states (all of them for mean, position 0 for cls, the last for last). A step that
/// starts at position 0 starts the sum afresh, so a preempted input recomputed from the start counts
/// each token once. Touched only by the step loop.
/// </summary>
internal sealed class PooledState(EmbeddingRequest request, int width)
{
    private readonly float[] _sum = new float[width];

    public EmbeddingRequest Request { get; } = request;

    /// <summary>The finished vector; null until the input's last token is computed.</summary>
    public float[]? Result { get; private set; }

    public void Add(ReadOnlySpan<float> stepSum, bool fromStart)
    {
        if (fromStart) Array.Clear(_sum);
        for (var i = 0; i < _sum.Length; i++) _sum[i] += stepSum[i];
    }

    public void Finish(int tokenCount)
    {
        if (Request.Pooling == PoolingType.Mean)
            for (var i = 0; i < _sum.Length; i++) _sum[i] /= tokenCount;
        if (Request.Normalize) EmbeddingVector.NormalizeL2(_sum);
        Result = _sum;
    }
}
