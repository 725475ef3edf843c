namespace Bulwark.Engine.Model;

/// <summary>A loaded Llama-family decoder: its config and read-only weights. Sessions run it.</summary>
public sealed class LlamaModel(LlamaConfig config, LlamaWeights weights) : IDisposable
{
    public LlamaConfig Config { get; } = config;

    public LlamaWeights Weights { get; } = weights;

    /// <summary>A single-sequence session with its own KV cache of <paramref name="contextLength"/> positions.</summary>
    public LlamaSession CreateSession(int? contextLength = null)
    {
        var length = contextLength ?? Config.ContextLength;
        if (length < 1 || length > Config.ContextLength)
            throw new ArgumentOutOfRangeException(nameof(contextLength), length, $"context length must be between 1 and the model's {Config.ContextLength}");
        return new LlamaSession(this, length);
    }

    public void Dispose() => Weights.Dispose();
}
