using System.Buffers.Binary;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Reference;

namespace Bulwark.Engine.Tests.Kernels.Reference;

public class QuantizeTests
{
    private static float[] RandomRow(int seed, int length, float scale)
    {
        var random = new Random(seed);
        var row = new float[length];
        for (var i = 0; i < length; i++) row[i] = (float)(random.NextDouble() * 2 - 1) * scale;
        return row;
    }

    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    public void DequantizedValuesAreWithinHalfAStepAndRequantizeToTheSameBytes(GgmlType type)
    {
        for (var seed = 0; seed < 50; seed++)
        {
            var row = RandomRow(seed, 256, seed % 7 == 0 ? 1e-2f : 3f);
            var bytes = new byte[Quantize.RowBytes(type, row.Length)];
            Quantize.Row(type, row, bytes);
            var back = new float[row.Length];
            Dequantize.Row(type, bytes, back);
            for (var block = 0; block < row.Length / 32; block++)
            {
                var d = Math.Abs((float)BinaryPrimitives.ReadHalfLittleEndian(bytes.AsSpan(block * GgmlTypes.BlockBytes(type))));
                for (var j = 0; j < 32; j++)
                {
                    var i = block * 32 + j;
                    // Q4_0 clamps the top of its range (+8 steps becomes +7), so its worst case is a whole step.
                    // Rounding the scale to f16 (relative 2^-11) moves level q by up to |q| * d * 2^-11.
                    var bound = type == GgmlType.Q4_0 ? d * (1f + 8f / 2048) : d * (0.5f + 127f / 2048);
                    Assert.True(Math.Abs(row[i] - back[i]) <= bound, $"{type} seed {seed} element {i}: {row[i]} came back as {back[i]} (step {d})");
                }
            }
            var again = new byte[bytes.Length];
            Quantize.Row(type, back, again);
            Assert.Equal(bytes, again);
        }
    }

    [Fact]
    public void Q8_0RoundsHalvesAwayFromZeroAsCRoundfDoes()
    {
        // max |x| = 127 makes the scale exactly 1, so x / d is x itself.
        var row = new float[32];
        row[0] = 127f;
        row[1] = 2.5f;
        row[2] = -2.5f;
        row[3] = 0.5f;
        row[4] = -126.5f;
        row[5] = 2.4999998f;
        var bytes = new byte[34];
        Quantize.Q8_0(row, bytes);
        Assert.Equal((Half)1f, BinaryPrimitives.ReadHalfLittleEndian(bytes));
        Assert.Equal(new sbyte[] { 127, 3, -3, 1, -127, 2, 0 }, bytes[2..9].Select(b => (sbyte)b).ToArray());
    }

    [Fact]
    public void Q4_0TakesTheSignedMaximumAsMinusEightStepsAndClampsTheOtherEnd()
    {
        var row = new float[32];
        row[0] = 8f;     // largest magnitude, positive: d = 8 / -8 = -1
        row[1] = -8f;    // -8 / -1 + 8.5 = 16.5 -> 16, clamped to 15 (dequantizes to -7)
        row[16] = 2.6f;  // -2.6 + 8.5 = 5.9 -> 5 (truncated)
        row[17] = -0.4f; // 0.4 + 8.5 = 8.9 -> 8
        var bytes = new byte[18];
        Quantize.Q4_0(row, bytes);
        Assert.Equal((Half)(-1f), BinaryPrimitives.ReadHalfLittleEndian(bytes));
        Assert.Equal(0, bytes[2] & 0x0F);         // element 0: 8 * -1 + 8.5 = 0.5 -> 0
        Assert.Equal(15, bytes[3] & 0x0F);        // element 1
        Assert.Equal(5, bytes[2] >> 4);           // element 16
        Assert.Equal(8, bytes[3] >> 4);           // element 17
        Assert.Equal(8, bytes[4] & 0x0F);         // zeros sit at 8
        var back = new float[32];
        Dequantize.Q4_0(bytes, back);
        Assert.Equal([8f, -7f, -0f], back[0..3]);
    }

    [Fact]
    public void AllZeroBlocksQuantizeToZeroScale()
    {
        foreach (var type in new[] { GgmlType.Q8_0, GgmlType.Q4_0 })
        {
            var bytes = Quantize.Tensor(type, new float[64], 32);
            var back = new float[64];
            Dequantize.Row(type, bytes, back);
            Assert.All(back, v => Assert.Equal(0f, v));
        }
    }

    [Fact]
    public void Bf16RoundsToNearestEvenAndKeepsNaNQuiet()
    {
        Assert.Equal(0x3F80, Quantize.ToBFloat16(BitConverter.UInt32BitsToSingle(0x3F808000))); // tie, even below
        Assert.Equal(0x3F82, Quantize.ToBFloat16(BitConverter.UInt32BitsToSingle(0x3F818000))); // tie, even above
        Assert.Equal(0x3F81, Quantize.ToBFloat16(BitConverter.UInt32BitsToSingle(0x3F808001))); // above the tie
        Assert.Equal(0x7FC1, Quantize.ToBFloat16(BitConverter.UInt32BitsToSingle(0x7F810000))); // signalling NaN -> quiet
        Assert.Equal(0x7F80, Quantize.ToBFloat16(float.PositiveInfinity));
    }

    [Theory]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void PlainTypesRoundTripThroughDequantize(GgmlType type)
    {
        var row = RandomRow(7, 100, 10f);
        var bytes = new byte[Quantize.RowBytes(type, row.Length)];
        Quantize.Row(type, row, bytes);
        var back = new float[row.Length];
        Dequantize.Row(type, bytes, back);
        var expected = type switch
        {
            GgmlType.F16 => row.Select(v => (float)(Half)v).ToArray(),
            GgmlType.BF16 => row.Select(v => BitConverter.Int32BitsToSingle(Quantize.ToBFloat16(v) << 16)).ToArray(),
            _ => row,
        };
        Assert.Equal(expected, back);
    }

    [Theory]
    [InlineData(GgmlType.Q8_0, 31)]
    [InlineData(GgmlType.Q4_0, 33)]
    [InlineData(GgmlType.Q2_K, 256)]
    public void RowsThatAreNotWholeBlocksOrUnsupportedTypesAreRefused(GgmlType type, int length)
    {
        Assert.ThrowsAny<Exception>(() => Quantize.Row(type, new float[length], new byte[1000]));
    }

    [Fact]
    public void DestinationOfTheWrongSizeIsRefused()
    {
        var error = Assert.Throws<ArgumentException>(() => Quantize.Row(GgmlType.Q8_0, new float[64], new byte[67]));
        Assert.Contains("need 68 bytes", error.Message);
    }
}
