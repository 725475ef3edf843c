namespace Bulwark.Engine.Synthesis;

/// <summary>
/// One generated weight in float32, named as in GGUF (<c>blk.0.attn_q.weight</c>), with its shape
/// outermost-first (<c>[rows, columns]</c>, <c>[experts, rows, columns]</c> for merged experts, or <c>[length]</c> for norms and biases). q/k rows of a
/// llama model are in GGUF's adjacent-pair RoPE order.
/// </summary>
public sealed record SyntheticTensor(string Name, int[] Shape, float[] Values)
{
    /// <summary>2-D weights (and 3-D merged experts) take the model's dtype; norms and biases stay F32.</summary>
    public bool IsMatrix => Shape.Length >= 2;

    /// <summary>Elements per row (the innermost dimension).</summary>
    public int RowLength => Shape[^1];
}
