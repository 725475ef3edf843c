using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Memory;
using Bulwark.Engine.Model.Weights;

namespace Bulwark.Engine.Tests.Kernels;

/// <summary>
/// <see cref="WeightMatrix.MatMulSharedNormed"/> (the executor's norm + Q/K/V and norm + gate/up) against its slow twin,
/// each row normed and then <see cref="WeightMatrix.MatMulShared"/>, on every route: repacked (norm first), stored
/// rows with 8-bit activations (norm fused into the quantization), float rows, and matrices that cannot share.
/// </summary>
public unsafe class NormedMatMulTests
{
    [Theory]
    [InlineData(GgmlType.Q8_0, GgmlType.Q8_0, true)]
    [InlineData(GgmlType.Q4_0, GgmlType.Q4_0, false)]
    [InlineData(GgmlType.Q4_K, GgmlType.Q4_K, true)]
    [InlineData(GgmlType.Q6_K, GgmlType.Q6_K, false)]
    [InlineData(GgmlType.F32, GgmlType.F32, true)]
    [InlineData(GgmlType.F16, GgmlType.F16, true)]
    [InlineData(GgmlType.Q8_0, GgmlType.Q4_K, true)] // types differ: one after another
    public void NormedSharedMatMulsEqualTheNormThenTheSharedCall(GgmlType first, GgmlType second, bool packed)
    {
        const int columns = 256;
        foreach (var tokens in new[] { 1, 7, 8, 19 })
        {
            using var wa = new RandomMatrix(first, 40, columns, seed: 31);
            using var wb = new RandomMatrix(second, 9, columns, seed: 32);
            using var wc = new RandomMatrix(first, 17, columns, seed: 33);
            using var a = new WeightMatrix("a", first, 40, columns, wa.Data);
            using var b = new WeightMatrix("b", second, 9, columns, wb.Data);
            using var c = new WeightMatrix("c", first, 17, columns, wc.Data);
            if (packed)
                foreach (var m in new[] { a, b, c }) m.PrepareForKernels(releaseMappedPages: false, KernelIsa.Active);
            using var norm = new NativeBuffer(columns);
            RandomMatrix.Activations(1, columns, seed: 35).CopyTo(norm.Span);
            var hidden = RandomMatrix.Activations(tokens, columns, seed: 36).Select(v => v * 30f).ToArray();

            var twinNormed = new float[tokens * columns];
            for (var t = 0; t < tokens; t++)
                VectorOps.RmsNorm(hidden.AsSpan(t * columns, columns), norm.Span, 1e-6f, twinNormed.AsSpan(t * columns, columns));
            var (ea, eb, ec) = (new float[tokens * 40], new float[tokens * 9], new float[tokens * 17]);
            WeightMatrix.MatMulShared(twinNormed, tokens, a, ea, b, eb, c, ec);

            var normed = new float[tokens * columns];
            var (ya, yb, yc) = (new float[tokens * 40], new float[tokens * 9], new float[tokens * 17]);
            WeightMatrix.MatMulSharedNormed(hidden, norm, 1e-6f, normed, tokens, a, ya, b, yb, c, yc);
            Assert.Equal(twinNormed, normed);
            Assert.Equal(ea, ya);
            Assert.Equal(eb, yb);
            Assert.Equal(ec, yc);
        }
    }

    [Fact]
    public void TheNormsWeightsAndBuffersAreChecked()
    {
        using var w = new RandomMatrix(GgmlType.Q8_0, 8, 64, seed: 1);
        using var a = new WeightMatrix("a", GgmlType.Q8_0, 8, 64, w.Data);
        using var b = new WeightMatrix("b", GgmlType.Q8_0, 8, 64, w.Data);
        using var norm = new NativeBuffer(64);
        using var shortNorm = new NativeBuffer(63);
        var hidden = new float[2 * 64];
        var e = Assert.Throws<ArgumentException>(() => WeightMatrix.MatMulSharedNormed(hidden, shortNorm, 1e-6f, new float[128], 2, a, new float[16], b, new float[16]));
        Assert.Contains("the norm needs 64 weights; got 63", e.Message);
        e = Assert.Throws<ArgumentException>(() => WeightMatrix.MatMulSharedNormed(hidden, norm, 1e-6f, new float[127], 2, a, new float[16], b, new float[16]));
        Assert.Contains("input needs 2 × 64 floats; got 127", e.Message);
        e = Assert.Throws<ArgumentException>(() => WeightMatrix.MatMulSharedNormed(hidden[..127], norm, 1e-6f, new float[128], 2, a, new float[16], b, new float[16]));
        Assert.Contains("input needs 2 × 64 floats; got 127", e.Message);
        e = Assert.Throws<ArgumentException>(() => WeightMatrix.MatMulSharedNormed(hidden, norm, 1e-6f, new float[128], 2, a, new float[16], b, new float[15]));
        Assert.Contains("b: output needs 2 × 8 floats; got 15", e.Message);
    }
}
