using System.Runtime.InteropServices;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Model.Weights;

namespace Bulwark.Engine.Tests.Kernels;

/// <summary>
/// The fast F16 conversion (<see cref="F16ScaledRow"/> against activations scaled by 2^112) against the exact
/// one it replaces, bit for bit, and the two guards that keep it exact: activations below 2^16, weights finite.
/// </summary>
public unsafe class HalfKernelsTests : IDisposable
{
    private readonly WorkerPool _pool = new(2);

    public void Dispose() => _pool.Dispose();

    private static IEnumerable<InstructionSet> SimdPaths() =>
        Enum.GetValues<InstructionSet>().Where(i => i != InstructionSet.Scalar && KernelIsa.IsSupported(i));

    [Fact]
    public void EveryFiniteHalfReadsAsItselfTimesTwoToTheMinus112()
    {
        var halves = new ushort[65536];
        for (var i = 0; i < halves.Length; i++) halves[i] = (ushort)i;
        fixed (ushort* p = halves)
        {
            for (var i = 0; i < halves.Length; i += 16)
            {
                var wide = F16ScaledRow.Load16((byte*)p, i);
                var narrow = F16ScaledRow.Load8((byte*)p, i);
                for (var j = 0; j < 16; j++)
                {
                    if ((halves[i + j] & 0x7C00) == 0x7C00) continue; // infinities and NaNs: never run through this path
                    var one = F16ScaledRow.Load1((byte*)p, i + j);
                    var exact = (double)HalfTable.ToSingle(halves[i + j]);
                    Assert.Equal(exact, one * (double)HalfKernels.Scale);
                    Assert.Equal(BitConverter.SingleToInt32Bits(one), BitConverter.SingleToInt32Bits(wide[j]));
                    if (j < 8) Assert.Equal(BitConverter.SingleToInt32Bits(one), BitConverter.SingleToInt32Bits(narrow[j]));
                }
            }
        }
    }

    /// <summary>
    /// The GEMM's widening of finite F16 rows gives the table's bits (its slow twin, built from
    /// <see cref="BitConverter.UInt16BitsToHalf"/>) and the exact widening's for every finite half: subnormals,
    /// both zeros, the largest finite, in one row and in runs of 0–70 (each of the 16-, 8- and 1-wide loops,
    /// and the element past the end left alone).
    /// </summary>
    [Fact]
    public void WideningFiniteHalvesGivesTheExactBitsForEveryFinitePattern()
    {
        var finite = Enumerable.Range(0, 65536).Select(i => (ushort)i).Where(h => (h & 0x7C00) != 0x7C00).ToArray();
        Assert.Equal(65536 - 2048, finite.Length);
        new Random(20).Shuffle(finite);
        var fast = new float[finite.Length + 1];
        var exact = new float[finite.Length + 1];
        fixed (ushort* h = finite)
        fixed (float* pf = fast)
        fixed (float* pe = exact)
        {
            FloatKernels.WidenFiniteHalves((byte*)h, finite.Length, pf);
            FloatKernels.Widen(GgmlType.F16, (byte*)h, finite.Length, pe);
            for (var i = 0; i < finite.Length; i++)
            {
                var table = BitConverter.SingleToInt32Bits(HalfTable.ToSingle(finite[i]));
                Assert.True(table == BitConverter.SingleToInt32Bits(fast[i]), $"0x{finite[i]:X4}: table {HalfTable.ToSingle(finite[i])}, widened {fast[i]}");
                Assert.True(table == BitConverter.SingleToInt32Bits(exact[i]), $"0x{finite[i]:X4}: exact widening {exact[i]}");
            }
            for (var count = 0; count <= 70; count++)
            {
                var start = count * 97;
                Array.Fill(fast, 12345f);
                FloatKernels.WidenFiniteHalves((byte*)(h + start), count, pf);
                for (var i = 0; i < count; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(HalfTable.ToSingle(finite[start + i])) == BitConverter.SingleToInt32Bits(fast[i]), $"{count} halves, element {i}");
                Assert.Equal(12345f, fast[count]);
            }
        }
    }

    /// <summary>
    /// Rows around the 4-row decode pass, columns off every vector width, tokens on both sides of the
    /// per-tile/widened switch; weights of every finite bit pattern (subnormals included).
    /// </summary>
    [Fact]
    public void ScaledHalfMatMulEqualsTheExactConversionBitForBit()
    {
        foreach (var isa in SimdPaths())
        foreach (var (rows, columns) in new[] { (1, 32), (3, 40), (4, 16), (7, 100), (9, 2056), (33, 72) })
        foreach (var tokens in new[] { 1, 2, 3, 4, 5, MatMul.WidenFrom - 1, MatMul.WidenFrom, 70 })
        {
            using var w = new RawHalves(rows, columns, seed: rows * 7 + columns);
            var x = RandomMatrix.Activations(tokens, columns, seed: tokens);
            var exact = Multiply(w.Data, rows, columns, x, tokens, isa, finiteHalves: false);
            var fast = Multiply(w.Data, rows, columns, x, tokens, isa, finiteHalves: true);
            AssertBitsEqual(exact, fast, $"{isa} [{rows}×{columns}]·{tokens}");
        }
    }

    [Fact]
    public void ActivationsFromTwoToTheSixteenUpKeepTheExactPath()
    {
        var below = new[] { 1f, -65535.996f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, 0f, -0f, 1e-40f };
        var scaled = new float[below.Length];
        fixed (float* px = below)
        fixed (float* ps = scaled)
        {
            Assert.True(HalfKernels.TryScale(px, below.Length, ps));
            for (var i = 0; i < below.Length; i++)
                Assert.Equal((double)below[i] * HalfKernels.Scale, (double)scaled[i]);
        }
        // At and above the limit, in the vector part and in the tail.
        foreach (var value in new[] { 65536f, -65536f, 1e30f, float.MaxValue })
        foreach (var at in new[] { 0, 7, 8, 9 })
        {
            var x = new float[10];
            x[at] = value;
            fixed (float* px = x)
            fixed (float* ps = new float[10])
                Assert.False(HalfKernels.TryScale(px, x.Length, ps), $"{value} at {at}");
        }
        // A matmul with one large activation falls back and still equals the exact path.
        using var w = new RawHalves(5, 48, seed: 2);
        var big = RandomMatrix.Activations(2, 48, seed: 3);
        big[47] = 70000f;
        foreach (var isa in SimdPaths())
            AssertBitsEqual(Multiply(w.Data, 5, 48, big, 2, isa, false), Multiply(w.Data, 5, 48, big, 2, isa, true), $"{isa} large activation");
    }

    [Theory]
    [InlineData((ushort)0x7C00)] // +inf
    [InlineData((ushort)0xFC00)] // -inf
    [InlineData((ushort)0x7E00)] // quiet NaN
    [InlineData((ushort)0xFC01)] // signalling NaN
    public void AnInfiniteOrNaNHalfIsFoundWherever(ushort bits)
    {
        var halves = new ushort[3 * (1 << 20) + 5];
        for (var i = 0; i < halves.Length; i++) halves[i] = (ushort)(i % 0x7C00); // every finite pattern, positive
        fixed (ushort* p = halves)
        {
            Assert.True(HalfKernels.AllFinite(p, halves.Length));
            Assert.True(HalfKernels.AllFinite(p, halves.Length, _pool));
            foreach (var at in new[] { 0, 15, 16, (1 << 20) + 3, halves.Length - 1 })
            {
                var saved = halves[at];
                halves[at] = bits;
                Assert.False(HalfKernels.AllFinite(p, halves.Length), $"{bits:X4} at {at}");
                Assert.False(HalfKernels.AllFinite(p, halves.Length, _pool), $"{bits:X4} at {at}, sliced");
                halves[at] = saved;
            }
        }
    }

    /// <summary>A model matrix with an infinite weight multiplies exactly (inf/NaN out), through the checked path.</summary>
    [Fact]
    public void AMatrixWithAnInfiniteWeightKeepsTheExactConversion()
    {
        using var raw = new RawHalves(6, 64, seed: 4);
        ((ushort*)raw.Data)[64 + 10] = 0x7C00; // row 1, column 10
        var matrix = new WeightMatrix("blk.0.test", GgmlType.F16, 6, 64, raw.Data);
        var x = RandomMatrix.Activations(1, 64, seed: 5);
        var y = new float[6];
        matrix.MatMul(x, y, 1);
        Assert.False(matrix.HalvesAreFinite);
        Assert.True(float.IsInfinity(y[1]) || float.IsNaN(y[1]));
        AssertBitsEqual(Multiply(raw.Data, 6, 64, x, 1, KernelIsa.Active, false), y, "model matrix");

        using var finite = new RawHalves(6, 64, seed: 4);
        Assert.True(new WeightMatrix("blk.0.finite", GgmlType.F16, 6, 64, finite.Data).HalvesAreFinite);
    }

    /// <summary>The decode pass over 4 rows at once gives each row the bits of the one-row kernel, for every float type.</summary>
    [Theory]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void FourRowDecodePassEqualsOneRowAtATime(GgmlType type)
    {
        foreach (var isa in SimdPaths())
        foreach (var columns in new[] { 8, 16, 24, 48, 100, 2056 })
        foreach (var tokens in new[] { 1, 3 })
        {
            const int rows = 9;
            using var w = new RandomMatrix(type, rows, columns, seed: columns);
            var x = RandomMatrix.Activations(tokens, columns, seed: 8);
            var together = new float[tokens * rows];
            var alone = new float[tokens * rows];
            fixed (float* px = x)
            fixed (float* pt = together)
            fixed (float* pa = alone)
            {
                FloatKernels.Tile(type, isa, w.Data, w.RowBytes, columns, 0, rows, px, 0, tokens, pt, rows);
                for (var r = 0; r < rows; r++)
                    FloatKernels.Tile(type, isa, w.Data, w.RowBytes, columns, r, r + 1, px, 0, tokens, pa, rows);
            }
            AssertBitsEqual(alone, together, $"{type} {isa} {columns} columns, {tokens} tokens");
        }
    }

    private float[] Multiply(byte* w, int rows, int columns, float[] x, int tokens, InstructionSet isa, bool finiteHalves)
    {
        var y = new float[tokens * rows];
        fixed (float* px = x)
        fixed (float* py = y)
            MatMul.Apply(GgmlType.F16, w, columns * 2L, rows, columns, px, py, tokens, isa, _pool, finiteHalves);
        return y;
    }

    private static void AssertBitsEqual(float[] expected, float[] actual, string what)
    {
        for (var i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"{what}: element {i} expected {expected[i]} got {actual[i]}");
    }

    /// <summary>F16 weights of random finite bit patterns: every exponent, subnormals and signed zeros included.</summary>
    private sealed class RawHalves : IDisposable
    {
        public RawHalves(int rows, int columns, int seed)
        {
            Data = (byte*)NativeMemory.AlignedAlloc((nuint)(rows * columns * 2 + 64), 64);
            var random = new Random(seed);
            var halves = (ushort*)Data;
            for (var i = 0; i < rows * columns; i++)
            {
                ushort h;
                do h = (ushort)random.Next(65536); while ((h & 0x7C00) == 0x7C00 || (h & 0x7C00) > 0x4800); // finite, |w| < 2^3
                halves[i] = h;
            }
        }

        public byte* Data { get; }

        public void Dispose() => NativeMemory.AlignedFree(Data);
    }
}
