using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Model.Weights;

namespace Bulwark.Engine.Tests.Kernels;

/// <summary>On-the-fly quantization of float weights at load: <see cref="WeightMatrix.Quantize"/>.</summary>
public unsafe class WeightMatrixQuantizeTests
{
    public static TheoryData<GgmlType, GgmlType> Pairs()
    {
        var data = new TheoryData<GgmlType, GgmlType>();
        foreach (var source in new[] { GgmlType.F32, GgmlType.F16, GgmlType.BF16 })
        foreach (var target in new[] { GgmlType.Q8_0, GgmlType.Q4_0 })
            data.Add(source, target);
        return data;
    }

    [Theory]
    [MemberData(nameof(Pairs))]
    public void QuantizedCopyHoldsExactlyWhatGgmlsQuantizerWrites(GgmlType source, GgmlType target)
    {
        using var random = new RandomMatrix(source, 37, 96, seed: 4);
        var matrix = new WeightMatrix("blk.0.ffn_up.weight", source, 37, 96, random.Data);
        using var quantized = matrix.Quantize(target);
        Assert.Equal((target, 37, 96, "blk.0.ffn_up.weight"), (quantized.Type, quantized.Rows, quantized.Columns, quantized.Name));
        var floats = new float[96];
        var expected = new byte[Quantize.RowBytes(target, 96)];
        for (var r = 0; r < 37; r++)
        {
            matrix.DequantizeRow(r, floats);
            Quantize.Row(target, floats, expected);
            Assert.Equal(expected, new ReadOnlySpan<byte>(quantized.Data + r * quantized.RowBytes, expected.Length).ToArray());
        }
    }

    [Fact]
    public void QuantizedCopyMultipliesCloseToTheOriginal()
    {
        using var random = new RandomMatrix(GgmlType.F32, 64, 256, seed: 8);
        var matrix = new WeightMatrix("w", GgmlType.F32, 64, 256, random.Data);
        using var quantized = matrix.Quantize(GgmlType.Q8_0);
        var x = RandomMatrix.Activations(1, 256, seed: 9);
        var exact = new float[64];
        var approx = new float[64];
        matrix.MatVec(x, exact);
        quantized.MatVec(x, approx);
        var dot = 0.0; var ne = 0.0; var na = 0.0;
        for (var i = 0; i < 64; i++) { dot += exact[i] * approx[i]; ne += exact[i] * exact[i]; na += approx[i] * approx[i]; }
        Assert.True(dot / Math.Sqrt(ne * na) > 0.999, $"cosine {dot / Math.Sqrt(ne * na)}");
    }

    [Fact]
    public void TargetsOtherThanQ8_0AndQ4_0AreRefused()
    {
        using var random = new RandomMatrix(GgmlType.F32, 2, 32, seed: 1);
        var matrix = new WeightMatrix("w", GgmlType.F32, 2, 32, random.Data);
        var e = Assert.Throws<ArgumentException>(() => matrix.Quantize(GgmlType.F16));
        Assert.Contains("must be Q8_0 or Q4_0; got F16", e.Message);
    }

    [Fact]
    public void QuantizedSourcesAreRefused()
    {
        using var random = new RandomMatrix(GgmlType.Q8_0, 2, 32, seed: 1);
        var matrix = new WeightMatrix("w", GgmlType.Q8_0, 2, 32, random.Data);
        var e = Assert.Throws<NotSupportedException>(() => matrix.Quantize(GgmlType.Q4_0));
        Assert.Contains("this matrix is Q8_0", e.Message);
    }

    [Theory]
    [InlineData(31, false)]
    [InlineData(32, true)]
    [InlineData(33, false)]
    [InlineData(64, true)]
    public void RowLengthMustBeWholeBlocks(int columns, bool accepted)
    {
        using var random = new RandomMatrix(GgmlType.F32, 2, columns, seed: 1);
        var matrix = new WeightMatrix("w", GgmlType.F32, 2, columns, random.Data);
        if (accepted)
        {
            using var q = matrix.Quantize(GgmlType.Q4_0);
            Assert.Equal(columns / 32 * 18, q.RowBytes);
        }
        else
        {
            var e = Assert.Throws<ArgumentException>(() => matrix.Quantize(GgmlType.Q4_0));
            Assert.Contains($"multiple of 32; got {columns}", e.Message);
        }
    }

    [Fact]
    public void ADisposedCopyRefusesToMultiply()
    {
        using var random = new RandomMatrix(GgmlType.F32, 2, 32, seed: 1);
        var quantized = new WeightMatrix("w", GgmlType.F32, 2, 32, random.Data).Quantize(GgmlType.Q8_0);
        quantized.Dispose();
        Assert.Throws<ObjectDisposedException>(() => quantized.MatVec(new float[32], new float[2]));
    }
}
