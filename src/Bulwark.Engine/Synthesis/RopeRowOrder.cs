namespace Bulwark.Engine.Synthesis;

/// <summary>
/// The two orders of q/k projection rows within a head. Hugging Face llama rotates dimension i
/// with i + head_dim/2 ("rotate half"); GGUF llama rotates 2i with 2i+1 (adjacent pairs), so
/// llama.cpp's converter (<c>LlamaModel.permute</c>: reshape(heads, 2, head_dim/2, in).swapaxes(1, 2))
/// moves HF row j·head_dim/2 + i of each head to GGUF row 2i + j.
/// </summary>
public static class RopeRowOrder
{
    /// <summary>HF (rotate-half) rows → GGUF (adjacent-pair) rows.</summary>
    public static float[] ToAdjacentPairs(ReadOnlySpan<float> rows, int heads, int headDim, int rowLength) =>
        Permute(rows, heads, headDim, rowLength, toAdjacent: true);

    /// <summary>GGUF (adjacent-pair) rows → HF (rotate-half) rows: the inverse of <see cref="ToAdjacentPairs"/>.</summary>
    public static float[] ToRotateHalf(ReadOnlySpan<float> rows, int heads, int headDim, int rowLength) =>
        Permute(rows, heads, headDim, rowLength, toAdjacent: false);

    private static float[] Permute(ReadOnlySpan<float> rows, int heads, int headDim, int rowLength, bool toAdjacent)
    {
        if (headDim % 2 != 0 || (long)heads * headDim * rowLength != rows.Length)
            throw new ArgumentException($"{rows.Length} values are not {heads} heads × {headDim} rows (even) × {rowLength} columns", nameof(rows));
        var output = new float[rows.Length];
        var half = headDim / 2;
        for (var h = 0; h < heads; h++)
        for (var j = 0; j < 2; j++)
        for (var i = 0; i < half; i++)
        {
            var hfRow = h * headDim + j * half + i;
            var ggufRow = h * headDim + 2 * i + j;
            var (from, to) = toAdjacent ? (hfRow, ggufRow) : (ggufRow, hfRow);
            rows.Slice(from * rowLength, rowLength).CopyTo(output.AsSpan(to * rowLength, rowLength));
        }
        return output;
    }
}
