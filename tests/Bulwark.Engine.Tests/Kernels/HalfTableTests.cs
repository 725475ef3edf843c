using Bulwark.Engine.Kernels.Cpu;

namespace Bulwark.Engine.Tests.Kernels;

/// <summary>The vectorised float16 → float32 conversion (<see cref="F16Row"/>'s) against the table, on every bit pattern.</summary>
public unsafe class HalfTableTests
{
    [Fact]
    public void EveryBitPatternConvertsToTheTablesBits()
    {
        var halves = new ushort[65536];
        for (var i = 0; i < halves.Length; i++) halves[i] = (ushort)i;
        var floats = new float[halves.Length];
        fixed (ushort* h = halves)
        fixed (float* f = floats)
            HalfTable.ToSingle(h, f, halves.Length);
        for (var i = 0; i < halves.Length; i++)
        {
            var table = HalfTable.ToSingle((ushort)i);
            if (float.IsNaN(table)) Assert.True(float.IsNaN(floats[i]), $"0x{i:X4}: NaN became {floats[i]}");
            else Assert.True(BitConverter.SingleToInt32Bits(table) == BitConverter.SingleToInt32Bits(floats[i]), $"0x{i:X4}: table {table} vector {floats[i]}");
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(70)]
    public void CountsAroundTheVectorWidthConvertExactlyThatMany(int count)
    {
        var random = new Random(count);
        var halves = new ushort[count + 1];
        for (var i = 0; i < halves.Length; i++) halves[i] = (ushort)random.Next(65536);
        var floats = new float[count + 1];
        floats[count] = 12345f; // one past the end stays untouched
        fixed (ushort* h = halves)
        fixed (float* f = floats)
            HalfTable.ToSingle(h, f, count);
        for (var i = 0; i < count; i++)
        {
            var table = HalfTable.ToSingle(halves[i]);
            Assert.True(float.IsNaN(table) ? float.IsNaN(floats[i]) : BitConverter.SingleToInt32Bits(table) == BitConverter.SingleToInt32Bits(floats[i]), $"0x{halves[i]:X4}");
        }
        Assert.Equal(12345f, floats[count]);
    }
}
