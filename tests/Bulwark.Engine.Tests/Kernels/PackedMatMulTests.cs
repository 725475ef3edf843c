using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Model.Weights;

namespace Bulwark.Engine.Tests.Kernels;

/// <summary>
/// The repacked VNNI kernel against its scalar twin (bit for bit: same integer sums, same FMA order)
/// and the twin against the ggml-layout scalar reference (same math, another summation order).
/// </summary>
public unsafe class PackedMatMulTests : IDisposable
{
    private readonly WorkerPool _pool = new(2);

    public void Dispose() => _pool.Dispose();

    // Rows not a multiple of the 8-row group nor of the 512-bit kernel's 16-row pair (an odd group
    // left over, a pair cut short), columns not a multiple of 64, tokens around the 4- and 8-token tiles.
    private static readonly (int Rows, int Columns, int Tokens)[] Shapes =
    [
        (1, 32, 1), (3, 64, 1), (8, 96, 3), (13, 160, 4), (17, 224, 5), (70, 544, 9), (130, 96, 70), (16, 32, 130),
        (13, 64, 8), (29, 96, 17), (24, 128, 15), (40, 32, 16), (9, 64, 7),
    ];

    public static TheoryData<GgmlType> Types() => new() { GgmlType.Q8_0, GgmlType.Q4_0 };

    private float[] Packed(RandomMatrix w, float[] x, int tokens, InstructionSet isa)
    {
        using var packed = PackedQuantMatrix.Pack(w.Type, w.Data, w.RowBytes, w.Rows, w.Columns, _pool);
        var y = new float[tokens * w.Rows];
        fixed (float* px = x)
        fixed (float* py = y)
            PackedMatMul.Apply(packed, px, py, tokens, isa, _pool);
        return y;
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void VnniKernelEqualsItsScalarTwinBitForBit(GgmlType type)
    {
        if (!PackedMatMul.HasFastPath(InstructionSet.AvxVnni)) return; // no AVX-VNNI here: nothing packed runs
        foreach (var (rows, columns, tokens) in Shapes)
        {
            using var w = new RandomMatrix(type, rows, columns, seed: rows * 7 + columns, negativeScales: true);
            var x = RandomMatrix.Activations(tokens, columns, seed: tokens + 1);
            var twin = Packed(w, x, tokens, InstructionSet.Scalar);
            foreach (var isa in new[] { InstructionSet.AvxVnni, InstructionSet.Avx512 })
            {
                if (!KernelIsa.IsSupported(isa)) continue;
                var fast = Packed(w, x, tokens, isa);
                for (var i = 0; i < twin.Length; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(twin[i]) == BitConverter.SingleToInt32Bits(fast[i]),
                        $"{type} {isa} [{rows}×{columns}]·{tokens}: element {i} twin {twin[i]} vnni {fast[i]}");
            }
        }
    }

    /// <summary>
    /// The 512-bit Q4_0 kernel sums a block's 16 products per row lane in 16 bits: at the extremes
    /// (every nibble 15 or 0, every activation ±127) the sum reaches ±30480 and must still be exact.
    /// </summary>
    [Theory]
    [InlineData(0xFF, 1f)]
    [InlineData(0xFF, -1f)]
    [InlineData(0x00, 1f)]
    [InlineData(0x00, -1f)]
    [InlineData(0xF0, 1f)]
    public void ExtremeQ4QuantsAndActivationsStayExact(byte quantByte, float activation)
    {
        const int rows = 32, columns = 128, tokens = 16;
        var rowBytes = GgmlTypes.ByteSize(GgmlType.Q4_0, columns);
        var data = new byte[rows * rowBytes];
        for (var block = 0; block < data.Length / 18; block++)
        {
            BitConverter.TryWriteBytes(data.AsSpan(block * 18), (Half)0.5f);
            data.AsSpan(block * 18 + 2, 16).Fill(quantByte);
        }
        var x = new float[tokens * columns];
        Array.Fill(x, activation);
        fixed (byte* pw = data)
        {
            using var packed = PackedQuantMatrix.Pack(GgmlType.Q4_0, pw, rowBytes, rows, columns, _pool);
            float[] Run(InstructionSet isa)
            {
                var y = new float[tokens * rows];
                fixed (float* px = x)
                fixed (float* py = y)
                    PackedMatMul.Apply(packed, px, py, tokens, isa, _pool);
                return y;
            }
            var twin = Run(InstructionSet.Scalar);
            // The twin against plain arithmetic: (nibble − 8) · 0.5 · activation summed over the row, to the
            // f16 rounding of the activation scale (a saturated 16-bit sum would be 7 % off).
            var lo = (quantByte & 0x0F) - 8;
            var hi = (quantByte >> 4) - 8;
            var expected = 0.5f * activation * (lo + hi) * 16 * (columns / 32);
            Assert.All(twin, v => Assert.True(MathF.Abs(v - expected) <= 1e-3f * MathF.Abs(expected), $"{v} vs {expected}"));
            foreach (var isa in new[] { InstructionSet.AvxVnni, InstructionSet.Avx512 })
                if (PackedMatMul.HasFastPath(isa) && KernelIsa.IsSupported(isa))
                    Assert.Equal(twin, Run(isa));
        }
    }

    [Fact]
    public void OnlyQ4RowsOfBoundedWidthTakeTheWidePath()
    {
        if (!PackedMatMul.HasFastPath(InstructionSet.Avx512) || !KernelIsa.IsSupported(InstructionSet.Avx512)) return;
        Assert.True(PackedMatMul.HasWidePath(GgmlType.Q4_0, PackedMatMul.MaxWideColumns, InstructionSet.Avx512));
        Assert.False(PackedMatMul.HasWidePath(GgmlType.Q4_0, PackedMatMul.MaxWideColumns + 32, InstructionSet.Avx512));
        Assert.False(PackedMatMul.HasWidePath(GgmlType.Q8_0, 64, InstructionSet.Avx512));
        Assert.False(PackedMatMul.HasWidePath(GgmlType.Q4_0, 64, InstructionSet.AvxVnni));
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void ScalarTwinMatchesTheGgmlLayoutReference(GgmlType type)
    {
        foreach (var (rows, columns, tokens) in Shapes)
        {
            using var w = new RandomMatrix(type, rows, columns, seed: rows * 13 + columns, negativeScales: true);
            var x = RandomMatrix.Activations(tokens, columns, seed: tokens + 2);
            var reference = w.Multiply(x, tokens, InstructionSet.Scalar, _pool);
            var twin = Packed(w, x, tokens, InstructionSet.Scalar);
            for (var i = 0; i < reference.Length; i++)
            {
                // Both sum exact block products in float; only the order of the per-block terms differs.
                var tolerance = 1e-5f * MathF.Max(1f, MathF.Abs(reference[i])) * columns / 32;
                Assert.True(MathF.Abs(reference[i] - twin[i]) <= tolerance,
                    $"{type} [{rows}×{columns}]·{tokens}: element {i} reference {reference[i]} packed {twin[i]}");
            }
        }
    }

    [Fact]
    public void OnlyWholeBlockQ8AndQ4RowsPack()
    {
        Assert.True(PackedQuantMatrix.CanPack(GgmlType.Q8_0, 64));
        Assert.True(PackedQuantMatrix.CanPack(GgmlType.Q4_0, 32));
        Assert.False(PackedQuantMatrix.CanPack(GgmlType.Q8_0, 48));
        Assert.False(PackedQuantMatrix.CanPack(GgmlType.F16, 64));
        Assert.False(PackedQuantMatrix.CanPack(GgmlType.Q4_K, 256));
        using var w = new RandomMatrix(GgmlType.F16, 8, 64, seed: 1);
        Assert.Throws<ArgumentException>(() => PackedQuantMatrix.Pack(GgmlType.F16, w.Data, w.RowBytes, 8, 64, _pool));
    }

    [Fact]
    public void APackedWeightMatrixMultipliesLikeTheUnpackedOne()
    {
        if (!PackedMatMul.HasFastPath(InstructionSet.AvxVnni)) return; // no AVX-VNNI here: nothing packed runs
        using var w = new RandomMatrix(GgmlType.Q8_0, 40, 256, seed: 3);
        var x = RandomMatrix.Activations(6, 256, seed: 4);
        var plain = new WeightMatrix("w", GgmlType.Q8_0, 40, 256, w.Data);
        var expected = new float[6 * 40];
        plain.MatMul(x, expected, 6);
        using var packed = new WeightMatrix("w", GgmlType.Q8_0, 40, 256, w.Data);
        packed.PrepareForKernels(releaseMappedPages: false, InstructionSet.AvxVnni);
        Assert.True(packed.IsPacked);
        var actual = new float[6 * 40];
        packed.MatMul(x, actual, 6);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(MathF.Abs(expected[i] - actual[i]) <= 1e-4f * MathF.Max(1f, MathF.Abs(expected[i])), $"element {i}: {expected[i]} vs {actual[i]}");
    }

    [Theory]
    [InlineData(GgmlType.Q4_K)]
    [InlineData(GgmlType.Q6_K)]
    public void KQuantMatricesRunAsRequantizedQ8(GgmlType type)
    {
        if (!PackedMatMul.HasFastPath(InstructionSet.AvxVnni)) return; // no AVX-VNNI here: K-quants keep the float path
        const int rows = 21, columns = 512, tokens = 11;
        using var w = new RandomMatrix(type, rows, columns, seed: 9);
        var x = RandomMatrix.Activations(tokens, columns, seed: 10);
        using var matrix = new WeightMatrix("k", type, rows, columns, w.Data);
        matrix.PrepareForKernels(releaseMappedPages: false, InstructionSet.AvxVnni);
        Assert.True(matrix.IsPacked);
        var actual = new float[tokens * rows];
        matrix.MatMul(x, actual, tokens);

        // The twin, built by hand: dequantize each row, quantize it with ggml's Q8_0 quantizer, pack, multiply.
        var q8RowBytes = GgmlTypes.ByteSize(GgmlType.Q8_0, columns);
        var q8 = new byte[rows * q8RowBytes];
        var row = new float[columns];
        for (var r = 0; r < rows; r++)
        {
            Bulwark.Engine.Kernels.Reference.Dequantize.Row(type, new ReadOnlySpan<byte>(w.Data + r * w.RowBytes, (int)w.RowBytes), row);
            Bulwark.Engine.Kernels.Reference.Quantize.Row(GgmlType.Q8_0, row, q8.AsSpan((int)(r * q8RowBytes), (int)q8RowBytes));
        }
        var expected = new float[tokens * rows];
        fixed (byte* pq = q8)
        fixed (float* px = x)
        fixed (float* py = expected)
        {
            using var packed = PackedQuantMatrix.Pack(GgmlType.Q8_0, pq, q8RowBytes, rows, columns, _pool);
            PackedMatMul.Apply(packed, px, py, tokens, InstructionSet.AvxVnni, _pool);
        }
        Assert.Equal(expected, actual);

        // And close to the float reference: both roundings are far finer than the K-quant's own levels.
        var reference = w.Multiply(x, tokens, InstructionSet.Scalar, _pool);
        for (var i = 0; i < reference.Length; i++)
        {
            var scale = 0.0;
            var t = i / rows;
            Bulwark.Engine.Kernels.Reference.Dequantize.Row(type, new ReadOnlySpan<byte>(w.Data + (i % rows) * w.RowBytes, (int)w.RowBytes), row);
            for (var c = 0; c < columns; c++) scale += Math.Abs(row[c] * x[t * columns + c]);
            Assert.True(Math.Abs(reference[i] - actual[i]) <= 0.01 * scale, $"{type} element {i}: reference {reference[i]} packed {actual[i]} (Σ|w·x| {scale})");
        }
    }

    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    public void AMatrixQuantizedAtLoadKeepsOnlyThePackedCopy(GgmlType type)
    {
        if (!PackedMatMul.HasFastPath(InstructionSet.AvxVnni)) return; // no AVX-VNNI here: nothing is packed
        const int rows = 19, columns = 160, tokens = 5;
        using var source = new RandomMatrix(GgmlType.F32, rows, columns, seed: 21);
        var x = RandomMatrix.Activations(tokens, columns, seed: 22);
        using var owned = new WeightMatrix("q", GgmlType.F32, rows, columns, source.Data).Quantize(type);
        var stored = new byte[rows * owned.RowBytes];
        new ReadOnlySpan<byte>(owned.Data, stored.Length).CopyTo(stored);
        var plainRow = new float[columns];
        owned.DequantizeRow(7, plainRow);
        var plain = new float[tokens * rows];
        owned.MatMul(x, plain, tokens, InstructionSet.Avx2);

        owned.PrepareForKernels(releaseMappedPages: false, InstructionSet.AvxVnni);
        Assert.True(owned.IsPacked);
        Assert.True(owned.Data == null); // the ggml-layout copy is freed: the weights are held once

        // Every row comes back byte for byte, lookups dequantize the same floats.
        var rebuilt = new byte[stored.Length];
        for (var r = 0; r < rows; r++) owned.StoredRow(r, rebuilt.AsSpan((int)(r * owned.RowBytes), (int)owned.RowBytes));
        Assert.Equal(stored, rebuilt);
        var row = new float[columns];
        owned.DequantizeRow(7, row);
        Assert.Equal(plainRow, row);

        // The fast path, and below VNNI the packed copy's scalar twin: both equal the twin over the same bytes.
        var twin = new float[tokens * rows];
        fixed (byte* pq = stored)
        fixed (float* px = x)
        fixed (float* py = twin)
        {
            using var packed = PackedQuantMatrix.Pack(type, pq, owned.RowBytes, rows, columns, _pool);
            PackedMatMul.Apply(packed, px, py, tokens, InstructionSet.Scalar, _pool);
        }
        var fast = new float[tokens * rows];
        owned.MatMul(x, fast, tokens, InstructionSet.AvxVnni);
        Assert.Equal(twin, fast);
        var lower = new float[tokens * rows];
        owned.MatMul(x, lower, tokens, InstructionSet.Avx2);
        Assert.Equal(twin, lower);
        for (var i = 0; i < plain.Length; i++)
            Assert.True(MathF.Abs(plain[i] - fast[i]) <= 1e-4f * MathF.Max(1f, MathF.Abs(plain[i])), $"element {i}: {plain[i]} vs {fast[i]}");
    }

    [Theory]
    [InlineData(GgmlType.Q8_0, GgmlType.Q8_0, true)]
    [InlineData(GgmlType.Q4_0, GgmlType.Q4_0, false)]
    [InlineData(GgmlType.Q8_0, GgmlType.Q4_0, true)] // types differ: runs one after another
    public void SharedMatMulsEqualSeparateOnes(GgmlType first, GgmlType second, bool three)
    {
        const int columns = 224;
        foreach (var tokens in new[] { 1, 5, 19 })
        {
            using var wa = new RandomMatrix(first, 40, columns, seed: 31);
            using var wb = new RandomMatrix(second, 9, columns, seed: 32);
            using var wc = new RandomMatrix(first, 17, columns, seed: 33);
            var x = RandomMatrix.Activations(tokens, columns, seed: 34);
            using var a = new WeightMatrix("a", first, 40, columns, wa.Data);
            using var b = new WeightMatrix("b", second, 9, columns, wb.Data);
            using var c = new WeightMatrix("c", first, 17, columns, wc.Data);
            foreach (var m in new[] { a, b, c }) m.PrepareForKernels(releaseMappedPages: false, InstructionSet.AvxVnni);
            float[] Separate(WeightMatrix m)
            {
                var y = new float[tokens * m.Rows];
                m.MatMul(x, y, tokens);
                return y;
            }
            var (ea, eb, ec) = (Separate(a), Separate(b), Separate(c));
            var (ya, yb, yc) = (new float[tokens * 40], new float[tokens * 9], new float[tokens * 17]);
            if (three) WeightMatrix.MatMulShared(x, tokens, a, ya, b, yb, c, yc);
            else WeightMatrix.MatMulShared(x, tokens, a, ya, b, yb);
            Assert.Equal(ea, ya);
            Assert.Equal(eb, yb);
            if (three) Assert.Equal(ec, yc);
        }
    }

    [Fact]
    public void SharedMatMulsCheckEveryOutput()
    {
        using var w = new RandomMatrix(GgmlType.Q8_0, 8, 64, seed: 1);
        using var a = new WeightMatrix("a", GgmlType.Q8_0, 8, 64, w.Data);
        using var b = new WeightMatrix("b", GgmlType.Q8_0, 8, 64, w.Data);
        var x = new float[2 * 64];
        var e = Assert.Throws<ArgumentException>(() => WeightMatrix.MatMulShared(x, 2, a, new float[16], b, new float[15]));
        Assert.Contains("b: output needs 2 × 8 floats; got 15", e.Message);
    }
}
