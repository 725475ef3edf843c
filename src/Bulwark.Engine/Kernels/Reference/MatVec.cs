using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Kernels.Reference;

/// <summary>
/// y = W·x for a row-major weight matrix of any supported type. Each row is dequantized a block
/// (or 256 plain elements) at a time into stack scratch and dotted with x, summing strictly in
/// order as llama2.c does: slow, allocation-free and obviously correct.
/// </summary>
public static unsafe class MatVec
{
    // A whole K-quant super-block; also whole 32-blocks of Q8_0/Q4_0.
    private const int Chunk = Dequantize.SuperBlock;

    public static void Apply(GgmlType type, byte* weights, long rowBytes, int rows, int columns,
        ReadOnlySpan<float> x, Span<float> y)
    {
        for (var r = 0; r < rows; r++)
            y[r] = DotRow(type, weights + r * rowBytes, columns, x);
    }

    /// <summary>Dot product of one stored row (of <paramref name="columns"/> elements) with x.</summary>
    public static float DotRow(GgmlType type, byte* row, int columns, ReadOnlySpan<float> x)
    {
        Span<float> chunk = stackalloc float[Chunk];
        var sum = 0f;
        for (var start = 0; start < columns; start += Chunk)
        {
            var n = Math.Min(Chunk, columns - start);
            var source = new ReadOnlySpan<byte>(row + GgmlTypes.ByteSize(type, start), (int)GgmlTypes.ByteSize(type, n));
            Dequantize.Row(type, source, chunk[..n]);
            for (var i = 0; i < n; i++) sum += chunk[i] * x[start + i];
        }
        return sum;
    }

    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var sum = 0f;
        for (var i = 0; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }
}
