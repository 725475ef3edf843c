using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model;

namespace Bulwark.Engine.Model.Reference;

/// <summary>
/// The slow, obviously correct embedding: one <see cref="LlamaSession"/> fed token by token, every final-norm
/// state kept, then pooled as the definition says. The engine's batched, chunked, preemptible pooling
/// (<c>Serving/Embeddings</c>) is tested against it.
/// </summary>
public static class ReferenceEmbedding
{
    public static float[] Embed(LlamaModel model, IReadOnlyList<int> tokens, PoolingType pooling, bool normalize = true)
    {
        if (tokens.Count == 0) throw new ArgumentException("at least one token is needed", nameof(tokens));
        var dim = model.Config.EmbeddingLength;
        var states = new float[tokens.Count][];
        using (var session = new LlamaSession(model, tokens.Count))
        {
            for (var i = 0; i < tokens.Count; i++)
            {
                session.Forward(tokens[i], i);
                states[i] = session.FinalHidden.ToArray();
            }
        }
        var vector = new float[dim];
        switch (pooling)
        {
            case PoolingType.Mean:
                for (var d = 0; d < dim; d++)
                {
                    double sum = 0;
                    foreach (var state in states) sum += state[d];
                    vector[d] = (float)(sum / states.Length);
                }
                break;
            case PoolingType.Cls:
                states[0].CopyTo(vector, 0);
                break;
            case PoolingType.Last:
                states[^1].CopyTo(vector, 0);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(pooling), pooling, "pooling must be mean, cls or last");
        }
        if (normalize) EmbeddingVector.NormalizeL2(vector);
        return vector;
    }
}
