using System.Runtime.InteropServices;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Model.Weights;

namespace Bulwark.Engine.Tests.Kernels;

/// <summary>
/// Q4_K and Q6_K against ggml itself: the <c>dequantize_row_q4_K</c>/<c>dequantize_row_q6_K</c>
/// exported by the libggml-base that LLamaSharp.Backend.Cpu ships (an independent implementation).
/// </summary>
public unsafe class KQuantTests
{
    private static readonly Lazy<nint> Ggml = new(() =>
    {
        var path = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "noavx", "libggml-base.so");
        if (!File.Exists(path)) throw new FileNotFoundException($"ggml from LLamaSharp.Backend.Cpu is missing at {path}");
        return NativeLibrary.Load(path);
    });

    private static float[] GgmlDequantize(GgmlType type, byte* blocks, int elements)
    {
        var name = type == GgmlType.Q4_K ? "dequantize_row_q4_K" : "dequantize_row_q6_K";
        var function = (delegate* unmanaged<byte*, float*, long, void>)NativeLibrary.GetExport(Ggml.Value, name);
        var output = new float[elements];
        fixed (float* y = output) function(blocks, y, elements);
        return output;
    }

    [Theory]
    [InlineData(GgmlType.Q4_K)]
    [InlineData(GgmlType.Q6_K)]
    public void DequantizeMatchesGgmlBitForBit(GgmlType type)
    {
        using var random = new RandomMatrix(type, 3, 256 * 5, seed: (int)type);
        var bytes = checked((int)(random.RowBytes * 3));
        var expected = GgmlDequantize(type, random.Data, 3 * 256 * 5);
        var actual = new float[3 * 256 * 5];
        Dequantize.Row(type, new ReadOnlySpan<byte>(random.Data, bytes), actual);
        Assert.Equal(expected, actual);
    }

    [Theory]
    [InlineData(GgmlType.Q4_K, 144)]
    [InlineData(GgmlType.Q6_K, 210)]
    public void SuperBlocksHave256ElementsAndGgmlsByteSize(GgmlType type, int bytes)
    {
        Assert.Equal(256, GgmlTypes.BlockSize(type));
        Assert.Equal(bytes, GgmlTypes.BlockBytes(type));
        Assert.True(Dequantize.IsSupported(type));
        Assert.Equal(-1, GgmlTypes.ByteSize(type, 255));
    }

    [Theory]
    [InlineData(GgmlType.Q4_K)]
    [InlineData(GgmlType.Q6_K)]
    public void AWeightMatrixOfKQuantsMultipliesAsItsDequantizedRows(GgmlType type)
    {
        using var random = new RandomMatrix(type, 5, 512, seed: 2);
        var matrix = new WeightMatrix("output.weight", type, 5, 512, random.Data);
        var x = RandomMatrix.Activations(3, 512, seed: 3);
        var y = new float[15];
        matrix.MatMul(x, y, 3);
        var row = new float[512];
        for (var r = 0; r < 5; r++)
        {
            matrix.DequantizeRow(r, row);
            for (var t = 0; t < 3; t++)
            {
                var expected = 0.0;
                for (var i = 0; i < 512; i++) expected += (double)row[i] * x[t * 512 + i];
                Assert.True(Math.Abs(y[t * 5 + r] - expected) <= 1e-4 * (1 + Math.Abs(expected)), $"row {r} token {t}: {y[t * 5 + r]} vs {expected}");
            }
        }
    }

    [Fact]
    public void KQuantsCannotBeWrittenByTheFloatQuantizer()
    {
        var e = Assert.Throws<NotSupportedException>(() => Quantize.RowBytes(GgmlType.Q4_K, 256));
        Assert.Contains("Q4_K cannot be written", e.Message);
    }
}
