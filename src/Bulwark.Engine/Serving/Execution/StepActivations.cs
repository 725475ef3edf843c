using Bulwark.Engine.Memory;
using Bulwark.Engine.Model.Config;

namespace Bulwark.Engine.Serving.Execution;

/// <summary>
/// The activations of one batched step, one row per batch token, in native memory. Sized for
/// the largest step seen so far; a larger step replaces them (rare: the scheduler's token budget
/// bounds the size), so a steady stream of steps allocates nothing.
/// </summary>
internal sealed class StepActivations : IDisposable
{
    private NativeBuffer[] _all = [];

    public StepActivations(LlamaConfig config) => Config = config;

    public LlamaConfig Config { get; }

    /// <summary>Batch tokens the buffers hold.</summary>
    public int TokenCapacity { get; private set; }

    /// <summary>Logit rows (sequences) the final-norm buffer holds.</summary>
    public int RowCapacity { get; private set; }

    /// <summary>The residual stream [tokens × dim].</summary>
    public NativeBuffer Hidden { get; private set; } = null!;
    public NativeBuffer Normed { get; private set; } = null!;
    public NativeBuffer Query { get; private set; } = null!;
    public NativeBuffer Key { get; private set; } = null!;
    public NativeBuffer Value { get; private set; } = null!;
    public NativeBuffer Attention { get; private set; } = null!;
    public NativeBuffer Delta { get; private set; } = null!;
    public NativeBuffer Gate { get; private set; } = null!;
    public NativeBuffer Up { get; private set; } = null!;

    /// <summary>RoPE cos and sin per token and rotated pair [tokens × head_dim/2], shared by every layer.</summary>
    public NativeBuffer Cos { get; private set; } = null!;
    public NativeBuffer Sin { get; private set; } = null!;

    /// <summary>Final-normed hidden state of each sequence's last token that needs logits [rows × dim].</summary>
    public NativeBuffer LastHidden { get; private set; } = null!;

    public void Ensure(int tokens, int rows)
    {
        if (tokens <= TokenCapacity && rows <= RowCapacity)
            return;
        // Grow geometrically so a slowly rising step size reallocates only a few times.
        var t = Math.Max(tokens, Math.Max(16, TokenCapacity * 2));
        var r = Math.Max(rows, Math.Max(8, RowCapacity * 2));
        var c = Config;
        Release();
        Hidden = new NativeBuffer((long)t * c.EmbeddingLength);
        Normed = new NativeBuffer((long)t * c.EmbeddingLength);
        Query = new NativeBuffer((long)t * c.QueryLength);
        Key = new NativeBuffer((long)t * c.KeyValueLength);
        Value = new NativeBuffer((long)t * c.KeyValueLength);
        Attention = new NativeBuffer((long)t * c.QueryLength);
        Delta = new NativeBuffer((long)t * c.EmbeddingLength);
        Gate = new NativeBuffer((long)t * c.FeedForwardLength);
        Up = new NativeBuffer((long)t * c.FeedForwardLength);
        Cos = new NativeBuffer((long)t * (c.HeadDim / 2));
        Sin = new NativeBuffer((long)t * (c.HeadDim / 2));
        LastHidden = new NativeBuffer((long)r * c.EmbeddingLength);
        _all = [Hidden, Normed, Query, Key, Value, Attention, Delta, Gate, Up, Cos, Sin, LastHidden];
        TokenCapacity = t;
        RowCapacity = r;
    }

    private void Release()
    {
        foreach (var buffer in _all)
            buffer.Dispose();
        _all = [];
    }

    public void Dispose() => Release();
}
