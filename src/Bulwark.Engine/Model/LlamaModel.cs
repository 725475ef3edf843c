using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Weights;

namespace Bulwark.Engine.Model;

/// <summary>
/// A loaded Llama-family decoder: its config and read-only weights. Two forward passes run it:
/// the serving engine's batched one over a paged KV cache (<c>Serving/Execution/PagedLlamaExecutor</c>)
/// and the single-sequence reference it is tested against (<c>Model/Reference/LlamaSession</c>).
/// </summary>
public sealed class LlamaModel(LlamaConfig config, LlamaWeights weights) : IDisposable
{
    public LlamaConfig Config { get; } = config;

    public LlamaWeights Weights { get; } = weights;

    public void Dispose() => Weights.Dispose();
}
