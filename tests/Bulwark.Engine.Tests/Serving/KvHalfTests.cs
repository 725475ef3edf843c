using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Serving.Execution;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>
/// The KV cache's float16 → float32 conversion (<see cref="KvHalf"/>) against its slow twin, the table: the same
/// bits for every finite half and infinity, a NaN for a NaN; runs of every length around the vector widths.
/// </summary>
public unsafe class KvHalfTests
{
    [Theory]
    [InlineData(65536)]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(9)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(64)]
    [InlineData(70)]
    public void RunsOfEveryPatternMatchTheTable(int run)
    {
        // Every bit pattern once, shuffled so that each run mixes normals, subnormals, zeros, infinities and NaNs.
        var patterns = Enumerable.Range(0, 65536).Select(i => (ushort)i).ToArray();
        new Random(run).Shuffle(patterns);
        var converted = new float[patterns.Length + 1];
        const float Untouched = 12345f;
        for (var start = 0; start < patterns.Length; start += Math.Max(1, run))
        {
            var count = Math.Min(run, patterns.Length - start);
            converted[start + count] = Untouched;
            fixed (ushort* h = patterns)
            fixed (float* f = converted)
                KvHalf.ToSingle(h + start, f + start, count);
            Assert.Equal(Untouched, converted[start + count]);
            for (var i = start; i < start + count; i++)
            {
                var table = HalfTable.ToSingle(patterns[i]);
                var fast = converted[i];
                Assert.True(float.IsNaN(table) ? float.IsNaN(fast) : BitConverter.SingleToInt32Bits(table) == BitConverter.SingleToInt32Bits(fast),
                    $"0x{patterns[i]:X4}: table {table} (0x{BitConverter.SingleToInt32Bits(table):X8}) fast {fast} (0x{BitConverter.SingleToInt32Bits(fast):X8})");
            }
        }
    }
}
