using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Kernels.Reference;

namespace Bulwark.Engine.Tests.Kernels;

/// <summary>The SIMD element-wise kernels and attention against their scalar twins, on awkward lengths.</summary>
public class VectorOpsTests
{
    private static float[] Random(int n, int seed, float scale = 2)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1) * scale).ToArray();
    }

    private static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, float tolerance = 1e-5f)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance * (1 + Math.Abs(expected[i])), $"element {i}: reference {expected[i]} fast {actual[i]}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(33)]
    [InlineData(2048)]
    [InlineData(2051)]
    public void RmsNormMatchesTheReference(int n)
    {
        var x = Random(n, n);
        var weight = Random(n, n + 1);
        var expected = new float[n];
        var actual = new float[n];
        RmsNorm.Apply(x, weight, 1e-5f, expected);
        VectorOps.RmsNorm(x, weight, 1e-5f, actual);
        Close(expected, actual);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(9)]
    [InlineData(5632)]
    [InlineData(5639)]
    public void SiluGateMatchesTheReference(int n)
    {
        var gate = Random(n, n, scale: 12);
        var up = Random(n, n + 1);
        var expected = gate.ToArray();
        Silu.GateInPlace(expected, up);
        VectorOps.SiluGate(gate, up);
        Close(expected, gate);
    }

    [Theory]
    [InlineData(RopeLayout.AdjacentPairs, 8, 3, 0)]
    [InlineData(RopeLayout.AdjacentPairs, 64, 32, 511)]
    [InlineData(RopeLayout.RotateHalf, 64, 4, 77)]
    [InlineData(RopeLayout.RotateHalf, 6, 5, 1000)]
    public void RopeMatchesTheReference(RopeLayout layout, int headDim, int heads, int position)
    {
        var inverse = Enumerable.Range(0, headDim / 2).Select(i => MathF.Pow(10000f, -2f * i / headDim)).ToArray();
        var expected = Random(headDim * heads, heads);
        var actual = expected.ToArray();
        Rope.Apply(expected, headDim, position, inverse, layout);
        VectorOps.Rope(actual, headDim, position, inverse, layout, new float[headDim]);
        Close(expected, actual);
    }

    [Fact]
    public void AddMatchesElementwiseSum()
    {
        var x = Random(37, 1);
        var d = Random(37, 2);
        var expected = x.Zip(d, (a, b) => a + b).ToArray();
        VectorOps.Add(x, d);
        Assert.Equal(expected, x);
    }

    [Theory]
    [InlineData(1, 4, 4, 8)]
    [InlineData(13, 32, 4, 64)]
    [InlineData(70, 12, 12, 64)]
    [InlineData(5, 6, 2, 6)]
    public void AttentionMatchesTheReference(int positions, int heads, int kvHeads, int headDim)
    {
        var q = Random(heads * headDim, 1);
        var k = Random(positions * kvHeads * headDim, 2);
        var v = Random(positions * kvHeads * headDim, 3);
        var expected = new float[heads * headDim];
        var actual = new float[heads * headDim];
        Bulwark.Engine.Kernels.Reference.Attention.Attend(q, k, v, positions, heads, kvHeads, headDim, new float[positions], expected);
        Bulwark.Engine.Kernels.Cpu.Attention.Attend(q, k, v, positions, heads, kvHeads, headDim, new float[positions + 3], actual);
        Close(expected, actual, 1e-4f);
    }
}
