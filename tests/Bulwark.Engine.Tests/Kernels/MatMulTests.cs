using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Kernels.Reference;

namespace Bulwark.Engine.Tests.Kernels;

/// <summary>Every SIMD path against its scalar twin, on awkward sizes, each instruction set forced in turn.</summary>
public unsafe class MatMulTests : IDisposable
{
    private readonly WorkerPool _pool = new(2);

    public void Dispose() => _pool.Dispose();

    public static TheoryData<GgmlType, InstructionSet> TypesAndPaths()
    {
        var data = new TheoryData<GgmlType, InstructionSet>();
        foreach (var type in new[] { GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.Q5_K,
                     GgmlType.Q3_K, GgmlType.Q2_K, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.IQ4_NL, GgmlType.IQ4_XS })
        foreach (var isa in Enum.GetValues<InstructionSet>())
            if (isa != InstructionSet.Scalar && KernelIsa.IsSupported(isa)) data.Add(type, isa);
        return data;
    }

    // rows, columns (a multiple of 32 as the block formats require), tokens.
    private static readonly (int Rows, int Columns, int Tokens)[] Shapes =
    [
        (1, 32, 1), (3, 64, 1), (5, 96, 3), (17, 160, 4), (33, 224, 5), (70, 544, 9), (130, 96, 70),
    ];

    [Theory]
    [MemberData(nameof(TypesAndPaths))]
    public void SimdPathMatchesTheScalarTwin(GgmlType type, InstructionSet isa)
    {
        // K-quant rows are whole super-blocks of 256.
        var shapes = GgmlTypes.BlockSize(type) == 256 ? Shapes.Select(s => (s.Rows, s.Columns * 8, s.Tokens)).ToArray() : Shapes;
        foreach (var (rows, columns, tokens) in shapes)
        {
            using var w = new RandomMatrix(type, rows, columns, seed: rows * 31 + columns);
            var x = RandomMatrix.Activations(tokens, columns, seed: tokens);
            var expected = w.Multiply(x, tokens, InstructionSet.Scalar, _pool);
            var actual = w.Multiply(x, tokens, isa, _pool);
            // Summation order differs, so the bound scales with Σ|w·x| (cancellation makes |y| a poor scale).
            var magnitude = AbsoluteProducts(w, x, tokens);
            for (var i = 0; i < expected.Length; i++)
                Assert.True(Math.Abs(expected[i] - actual[i]) <= 2e-5 * magnitude[i] + 1e-6,
                    $"{type} {isa} [{rows}×{columns}]·{tokens} tokens: element {i} scalar {expected[i]} simd {actual[i]} (Σ|w·x| {magnitude[i]})");
        }
    }

    /// <summary>Σ|w_i·x_i| for each output (token-major, as the matmul writes them).</summary>
    private static double[] AbsoluteProducts(RandomMatrix w, float[] x, int tokens)
    {
        var result = new double[tokens * w.Rows];
        var row = new float[w.Columns];
        for (var r = 0; r < w.Rows; r++)
        {
            Dequantize.Row(w.Type, new ReadOnlySpan<byte>(w.Data + r * w.RowBytes, (int)w.RowBytes), row);
            for (var t = 0; t < tokens; t++)
            {
                var sum = 0.0;
                for (var i = 0; i < w.Columns; i++) sum += Math.Abs((double)row[i] * x[t * w.Columns + i]);
                result[t * w.Rows + r] = sum;
            }
        }
        return result;
    }

    /// <summary>
    /// From <see cref="MatMul.WidenFrom"/> tokens, F16/BF16 rows are widened once and run through the F32
    /// kernel: the same values in the same FMA order as converting them per tile of 4 tokens, so equal bit for bit.
    /// Rows around the 16-row widening run, columns off the vector widths, tokens at, below and above the switch.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void WidenedRowsEqualPerTileConversionBitForBit(GgmlType type)
    {
        foreach (var isa in Enum.GetValues<InstructionSet>().Where(i => i != InstructionSet.Scalar && KernelIsa.IsSupported(i)))
        foreach (var (rows, columns) in new[] { (15, 100), (16, 64), (17, 2056), (40, 24) })
        foreach (var tokens in new[] { MatMul.WidenFrom - 1, MatMul.WidenFrom, MatMul.WidenFrom + 1, 70 })
        {
            using var w = new RandomMatrix(type, rows, columns, seed: rows + columns);
            var x = RandomMatrix.Activations(tokens, columns, seed: tokens);
            var perTile = new float[tokens * rows];
            fixed (float* px = x)
            fixed (float* py = perTile)
                FloatKernels.Tile(type, isa, w.Data, w.RowBytes, columns, 0, rows, px, 0, tokens, py, rows);
            var actual = w.Multiply(x, tokens, isa, _pool);
            for (var i = 0; i < perTile.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(perTile[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                    $"{type} {isa} [{rows}×{columns}]·{tokens}: element {i} per tile {perTile[i]} widened {actual[i]}");
        }
    }

    /// <summary>Weight types of the shared-input calls, with and without the finite-halves path for F16.</summary>
    public static TheoryData<GgmlType, bool> SharedTypes => new()
    {
        { GgmlType.F16, true }, { GgmlType.F16, false }, { GgmlType.BF16, false }, { GgmlType.F32, false },
        { GgmlType.Q8_0, false }, { GgmlType.Q4_0, false }, { GgmlType.Q4_1, false }, { GgmlType.Q4_K, false }, { GgmlType.Q6_K, false },
    };

    /// <summary>Q/K/V and gate/up in one dispatch over one preparation of the input: each output as a call of its own.</summary>
    [Theory]
    [MemberData(nameof(SharedTypes))]
    public void SharedInputMatMulsEqualSeparateCallsBitForBit(GgmlType type, bool finiteHalves)
    {
        var columns = GgmlTypes.BlockSize(type) == 256 ? 512 : 96;
        foreach (var isa in Enum.GetValues<InstructionSet>().Where(KernelIsa.IsSupported))
        foreach (var tokens in new[] { 1, 5, 9 })
        foreach (var third in new[] { true, false })
        {
            using var a = new RandomMatrix(type, 37, columns, seed: 1);
            using var b = new RandomMatrix(type, 8, columns, seed: 2);
            using var c = new RandomMatrix(type, 13, columns, seed: 3);
            var x = RandomMatrix.Activations(tokens, columns, seed: tokens);
            var ya = new float[tokens * a.Rows];
            var yb = new float[tokens * b.Rows];
            var yc = new float[tokens * c.Rows];
            fixed (float* px = x)
            fixed (float* pa = ya)
            fixed (float* pb = yb)
            fixed (float* pc = yc)
                MatMul.ApplyShared(px, columns, tokens, isa, _pool,
                    new MatMul.Operand(type, a.Data, a.RowBytes, a.Rows, pa, finiteHalves),
                    new MatMul.Operand(type, b.Data, b.RowBytes, b.Rows, pb, finiteHalves),
                    third ? new MatMul.Operand(type, c.Data, c.RowBytes, c.Rows, pc, finiteHalves) : null);
            foreach (var (w, y) in third ? new[] { (a, ya), (b, yb), (c, yc) } : [(a, ya), (b, yb)])
            {
                var alone = new float[tokens * w.Rows];
                fixed (float* px = x)
                fixed (float* py = alone)
                    MatMul.Apply(type, w.Data, w.RowBytes, w.Rows, columns, px, py, tokens, isa, _pool, finiteHalves);
                for (var i = 0; i < alone.Length; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(alone[i]) == BitConverter.SingleToInt32Bits(y[i]),
                        $"{type} {isa} {tokens} tokens, {w.Rows}-row matrix: element {i} alone {alone[i]} shared {y[i]}");
            }
            if (!third) Assert.All(yc, v => Assert.Equal(0f, v)); // no third matrix: nothing written there
        }
    }

    /// <summary>
    /// RMSNorm fused into the preparation of the input (into the quantization for 8-bit activations) against its slow
    /// twin, the norm of each row and then the shared call: the normed rows and every output bit for bit, below, at and
    /// above the 8 tokens from which quantization runs on the pool.
    /// </summary>
    [Theory]
    [MemberData(nameof(SharedTypes))]
    public void NormFusedIntoThePreparationEqualsTheNormThenTheCall(GgmlType type, bool finiteHalves)
    {
        var columns = GgmlTypes.BlockSize(type) == 256 ? 512 : 96;
        var weight = RandomMatrix.Activations(1, columns, seed: 99);
        foreach (var isa in Enum.GetValues<InstructionSet>().Where(KernelIsa.IsSupported))
        foreach (var tokens in new[] { 1, 7, 8, 9, 33 })
        {
            using var a = new RandomMatrix(type, 37, columns, seed: 1);
            using var b = new RandomMatrix(type, 8, columns, seed: 2);
            var hidden = RandomMatrix.Activations(tokens, columns, seed: tokens);
            for (var i = 0; i < hidden.Length; i++) hidden[i] *= 40f; // a residual stream's scale, so the norm changes the values
            var normedFused = new float[tokens * columns];
            var normedTwin = new float[tokens * columns];
            var (ya, yb, za, zb) = (new float[tokens * a.Rows], new float[tokens * b.Rows], new float[tokens * a.Rows], new float[tokens * b.Rows]);
            for (var t = 0; t < tokens; t++)
                VectorOps.RmsNorm(hidden.AsSpan(t * columns, columns), weight, 1e-5f, normedTwin.AsSpan(t * columns, columns));
            fixed (float* ph = hidden, pw = weight, pn = normedFused, pt = normedTwin)
            fixed (float* pa = ya, pb = yb, qa = za, qb = zb)
            {
                MatMul.ApplySharedNormed(new MatMul.RowNorm(ph, pw, 1e-5f), pn, columns, tokens, isa, _pool,
                    new MatMul.Operand(type, a.Data, a.RowBytes, a.Rows, pa, finiteHalves), new MatMul.Operand(type, b.Data, b.RowBytes, b.Rows, pb, finiteHalves), null);
                MatMul.ApplyShared(pt, columns, tokens, isa, _pool,
                    new MatMul.Operand(type, a.Data, a.RowBytes, a.Rows, qa, finiteHalves), new MatMul.Operand(type, b.Data, b.RowBytes, b.Rows, qb, finiteHalves), null);
            }
            foreach (var (name, fused, twin) in new[] { ("normed", normedFused, normedTwin), ("a", ya, za), ("b", yb, zb) })
                for (var i = 0; i < twin.Length; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(twin[i]) == BitConverter.SingleToInt32Bits(fused[i]),
                        $"{type} {isa} {tokens} tokens, {name}: element {i} fused {fused[i]} twin {twin[i]}");
        }
    }

    /// <summary>
    /// Quantized types sum integers per block, so a token's row must not depend on the tile it falls in: each token of a
    /// multi-token call (4-token tiles plus leftovers) equals that token multiplied alone, bit for bit — what lets a
    /// speculative verification row equal plain decoding of that position.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q5_0)]
    [InlineData(GgmlType.Q4_1)]
    [InlineData(GgmlType.IQ4_NL)]
    [InlineData(GgmlType.Q4_K)]
    [InlineData(GgmlType.Q6_K)]
    public void EachTokenOfABatchEqualsThatTokenAloneBitForBit(GgmlType type)
    {
        foreach (var isa in Enum.GetValues<InstructionSet>().Where(KernelIsa.IsSupported))
        foreach (var columns in GgmlTypes.BlockSize(type) == 256 ? new[] { 256, 768, 1280 } : new[] { 32, 96, 128, 160, 288 }) // block counts below, at and above the 4-block group
        {
            const int tokens = 9;
            using var w = new RandomMatrix(type, 13, columns, seed: columns);
            var x = RandomMatrix.Activations(tokens, columns, seed: 7);
            var together = new float[tokens * w.Rows];
            fixed (float* px = x)
            fixed (float* py = together)
                MatMul.Apply(type, w.Data, w.RowBytes, w.Rows, columns, px, py, tokens, isa, _pool);
            for (var t = 0; t < tokens; t++)
            {
                var alone = new float[w.Rows];
                fixed (float* px = x.AsSpan(t * columns, columns))
                fixed (float* py = alone)
                    MatMul.Apply(type, w.Data, w.RowBytes, w.Rows, columns, px, py, 1, isa, _pool);
                for (var r = 0; r < w.Rows; r++)
                    Assert.True(BitConverter.SingleToInt32Bits(alone[r]) == BitConverter.SingleToInt32Bits(together[t * w.Rows + r]),
                        $"{type} {isa} {columns} columns: token {t} row {r} alone {alone[r]}, in a batch of {tokens} {together[t * w.Rows + r]}");
            }
        }
    }

    [Fact]
    public void MatricesOfDifferentTypesOrHalfChecksAreNotShared()
    {
        var f16 = new MatMul.Operand(GgmlType.F16, null, 64, 1, null, finiteHalves: true);
        Assert.False(MatMul.CanShare(f16, new MatMul.Operand(GgmlType.F16, null, 64, 1, null, finiteHalves: false)));
        Assert.False(MatMul.CanShare(f16, new MatMul.Operand(GgmlType.BF16, null, 64, 1, null, finiteHalves: true)));
        Assert.Throws<ArgumentException>(() => MatMul.ApplyShared(null, 32, 1, InstructionSet.Scalar, _pool, f16,
            new MatMul.Operand(GgmlType.Q8_0, null, 34, 1, null), null));
    }

    [Fact]
    public void OnlyF16AndBF16RowsAreWidened()
    {
        var row = new byte[64];
        var output = new float[16];
        fixed (byte* r = row)
        fixed (float* o = output)
        {
            var pr = r;
            var po = o;
            Assert.Throws<NotSupportedException>(() => FloatKernels.Widen(GgmlType.F32, pr, 16, po));
            Assert.Throws<NotSupportedException>(() => FloatKernels.Widen(GgmlType.Q8_0, pr, 16, po));
        }
    }

    [Theory]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void FloatScalarPathIsTheReferenceMatVec(GgmlType type)
    {
        using var w = new RandomMatrix(type, 9, 100, seed: 5);
        var x = RandomMatrix.Activations(2, 100, seed: 6);
        var y = w.Multiply(x, 2, InstructionSet.Scalar, _pool);
        for (var t = 0; t < 2; t++)
        {
            var expected = new float[9];
            MatVec.Apply(type, w.Data, w.RowBytes, 9, 100, x.AsSpan(t * 100, 100), expected);
            Assert.Equal(expected, y.AsSpan(t * 9, 9).ToArray());
        }
    }

    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    public void QuantizedScalarPathIsCloseToTheFloatReference(GgmlType type)
    {
        // 8-bit activations lose at most half a step (max|x|/254) per element; the bound sums that
        // error over the row against |w|.
        const int rows = 11, columns = 256, tokens = 3;
        using var w = new RandomMatrix(type, rows, columns, seed: 9);
        var x = RandomMatrix.Activations(tokens, columns, seed: 10);
        var y = w.Multiply(x, tokens, InstructionSet.Scalar, _pool);
        var dequantized = new float[columns];
        for (var r = 0; r < rows; r++)
        {
            Dequantize.Row(type, new ReadOnlySpan<byte>(w.Data + r * w.RowBytes, (int)w.RowBytes), dequantized);
            for (var t = 0; t < tokens; t++)
            {
                var xt = x.AsSpan(t * columns, columns);
                var exact = 0.0;
                var bound = 0.0;
                for (var i = 0; i < columns; i++)
                {
                    exact += (double)dequantized[i] * xt[i];
                    var blockMax = 0f;
                    for (var j = i / 32 * 32; j < i / 32 * 32 + 32; j++) blockMax = Math.Max(blockMax, Math.Abs(xt[j]));
                    bound += Math.Abs(dequantized[i]) * (blockMax / 254 * 1.01 + 1e-6);
                }
                Assert.True(Math.Abs(y[t * rows + r] - exact) <= bound + 1e-4,
                    $"{type} row {r} token {t}: int8 path {y[t * rows + r]} float {exact} bound {bound}");
            }
        }
    }

    [Fact]
    public void VectorHalfWideningMatchesTheRuntimeOnEveryBitPattern()
    {
        var halves = new ushort[65536];
        for (var i = 0; i < halves.Length; i++) halves[i] = (ushort)i;
        fixed (ushort* p = halves)
        {
            for (var i = 0; i < halves.Length; i += 16)
            {
                var narrow = F16Row.Load8((byte*)p, i);
                var wide = F16Row.Load16((byte*)p, i);
                for (var j = 0; j < 16; j++)
                {
                    var value = (float)BitConverter.UInt16BitsToHalf(halves[i + j]);
                    if (float.IsNaN(value))
                    {
                        // NaN payloads may differ (the runtime quiets signalling NaNs); NaN must stay NaN.
                        Assert.True(float.IsNaN(wide[j]) && (j >= 8 || float.IsNaN(narrow[j])), $"half bits {halves[i + j]:X4}");
                        continue;
                    }
                    var expected = BitConverter.SingleToInt32Bits(value);
                    Assert.Equal(expected, BitConverter.SingleToInt32Bits(wide[j]));
                    if (j < 8) Assert.Equal(expected, BitConverter.SingleToInt32Bits(narrow[j]));
                }
            }
        }
    }

    [Fact]
    public void VectorActivationQuantizerMatchesTheScalarOne()
    {
        var random = new Random(3);
        var x = new float[32 * 50];
        for (var i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 10 - 5) * (i / 32 % 7 == 0 ? 1e-3f : 1f);
        x.AsSpan(32 * 5, 32).Clear(); // an all-zero block: scale 0, quants 0
        var qs = new sbyte[32];
        var qv = new sbyte[32];
        fixed (float* px = x)
        fixed (sbyte* ps = qs)
        fixed (sbyte* pv = qv)
        {
            for (var b = 0; b < 50; b++)
            {
                float ss, sv;
                Q8Activations.QuantizeBlockScalar(px + b * 32, ps, &ss);
                Q8Activations.QuantizeBlockVector(px + b * 32, pv, &sv);
                Assert.Equal(ss, sv);
                Assert.Equal(qs, qv);
                Assert.All(qs, q => Assert.InRange(q, -127, 127));
            }
        }
    }

    [Fact]
    public void TheActivePathRespectsTheMaxSwitch()
    {
        var saved = KernelIsa.Max;
        try
        {
            foreach (var isa in Enum.GetValues<InstructionSet>())
            {
                KernelIsa.Max = isa;
                Assert.True(KernelIsa.Active <= isa);
                Assert.True(KernelIsa.IsSupported(KernelIsa.Active));
            }
        }
        finally
        {
            KernelIsa.Max = saved;
        }
    }

    [Fact]
    public void AnUnsupportedPathIsRefusedWithTheBestSupportedOneNamed()
    {
        using var w = new RandomMatrix(GgmlType.Q8_0, 1, 32, 1);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => w.Multiply(new float[32], 1, (InstructionSet)99, _pool));
        Assert.Contains(KernelIsa.Detected.ToString(), e.Message);
    }
}
