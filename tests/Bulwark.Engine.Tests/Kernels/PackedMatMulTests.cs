using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Model.Weights;

namespace Bulwark.Engine.Tests.Kernels;

/// <summary>
/// The repacked kernel — <c>vpdpbusd</c> with AVX-VNNI, its exact <c>vpmaddubsw</c> emulation on AVX2 and AVX-512
/// without it, Q4_0's 512-bit tiles — against its scalar twin (bit for bit: same integer sums, same FMA order)
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

    public static TheoryData<GgmlType> Types() => new() { GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q5_0 };

    /// <summary>Every SIMD path the packed kernel has on this CPU: AVX2 (emulated <c>vpdpbusd</c>), AVX-VNNI, AVX-512.</summary>
    private static readonly InstructionSet[] FastIsas =
        new[] { InstructionSet.Avx2, InstructionSet.AvxVnni, InstructionSet.Avx512 }.Where(PackedMatMul.HasFastPath).ToArray();

    /// <summary>The best path the packed kernel runs here, or null on a CPU without AVX2.</summary>
    private static InstructionSet? BestIsa => FastIsas.Length > 0 ? FastIsas[^1] : null;

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
    public void PackedKernelsEqualTheirScalarTwinBitForBit(GgmlType type)
    {
        if (FastIsas.Length == 0) return; // no AVX2 here: only the scalar twin runs
        foreach (var (rows, columns, tokens) in Shapes)
        {
            using var w = new RandomMatrix(type, rows, columns, seed: rows * 7 + columns, negativeScales: true);
            var x = RandomMatrix.Activations(tokens, columns, seed: tokens + 1);
            var twin = Packed(w, x, tokens, InstructionSet.Scalar);
            foreach (var isa in FastIsas)
            {
                var fast = Packed(w, x, tokens, isa);
                for (var i = 0; i < twin.Length; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(twin[i]) == BitConverter.SingleToInt32Bits(fast[i]),
                        $"{type} {isa} [{rows}×{columns}]·{tokens}: element {i} twin {twin[i]} vnni {fast[i]}");
            }
        }
    }

    /// <summary>
    /// Nothing is written past the output: a group (8 rows) or a 512-bit pair (16) cut short by the matrix's end stores only
    /// its rows (masked stores), so a guard of sentinel floats after the last token's row stays as it was, on every path.
    /// </summary>
    [Theory]
    [MemberData(nameof(Types))]
    public void NothingIsWrittenPastTheOutput(GgmlType type)
    {
        const int guard = 32;
        const int sentinel = 0x7FC0_1234;
        foreach (var isa in FastIsas.Append(InstructionSet.Scalar))
        foreach (var (rows, columns, tokens) in Shapes)
        {
            using var w = new RandomMatrix(type, rows, columns, seed: rows + 3);
            var x = RandomMatrix.Activations(tokens, columns, seed: 5);
            using var packed = PackedQuantMatrix.Pack(w.Type, w.Data, w.RowBytes, w.Rows, w.Columns, _pool);
            var y = new float[tokens * rows + guard];
            Array.Fill(y, BitConverter.Int32BitsToSingle(sentinel));
            fixed (float* px = x)
            fixed (float* py = y)
                PackedMatMul.Apply(packed, px, py, tokens, isa, _pool);
            for (var i = tokens * rows; i < y.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(y[i]) == sentinel, $"{type} {isa} [{rows}×{columns}]·{tokens}: wrote guard float {i - tokens * rows}");
        }
    }

    /// <summary>
    /// Each token of a multi-token call equals that token multiplied alone, bit for bit, on every packed path: what lets
    /// a batched step (or a speculative verification row, or an expert's grouped rows) equal the session's one token.
    /// </summary>
    [Theory]
    [MemberData(nameof(Types))]
    public void EachTokenOfABatchEqualsThatTokenAloneBitForBit(GgmlType type)
    {
        foreach (var isa in FastIsas)
        foreach (var (rows, columns) in new[] { (13, 32), (64, 64), (16, 96), (24, 288), (8, 2048) })
        foreach (var tokens in new[] { 2, 3, 4, 5, 7, 8, 9, 17 })
        {
            using var w = new RandomMatrix(type, rows, columns, seed: rows + columns);
            var x = RandomMatrix.Activations(tokens, columns, seed: tokens);
            var together = Packed(w, x, tokens, isa);
            for (var t = 0; t < tokens; t++)
            {
                var alone = Packed(w, x.AsSpan(t * columns, columns).ToArray(), 1, isa);
                for (var r = 0; r < rows; r++)
                    Assert.True(BitConverter.SingleToInt32Bits(alone[r]) == BitConverter.SingleToInt32Bits(together[t * rows + r]),
                        $"{type} {isa} [{rows}×{columns}]·{tokens}: token {t} row {r} alone {alone[r]}, in the batch {together[t * rows + r]}");
            }
        }
    }

    /// <summary>
    /// The 16-bit sums at their limits, on every path: the 512-bit Q4_0 kernel and the AVX2 emulation add a Q4_0 block's
    /// 16 products per lane in 16 bits (every nibble 15 or 0, every activation ±127: ±30480), Q5_0's 4 chunks (quants 31:
    /// 31496), Q8_0's |w|·x pairs (w = −128: 32512) — each must still be exact.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.Q4_0, 0xFF, 1f)]
    [InlineData(GgmlType.Q4_0, 0xFF, -1f)]
    [InlineData(GgmlType.Q4_0, 0x00, 1f)]
    [InlineData(GgmlType.Q4_0, 0x00, -1f)]
    [InlineData(GgmlType.Q4_0, 0xF0, 1f)]
    [InlineData(GgmlType.Q5_0, 0xFF, 1f)]
    [InlineData(GgmlType.Q5_0, 0xFF, -1f)]
    [InlineData(GgmlType.Q5_0, 0x00, 1f)]
    [InlineData(GgmlType.Q5_0, 0x00, -1f)]
    [InlineData(GgmlType.Q8_0, 0x80, 1f)]
    [InlineData(GgmlType.Q8_0, 0x80, -1f)]
    [InlineData(GgmlType.Q8_0, 0x7F, 1f)]
    [InlineData(GgmlType.Q8_0, 0x7F, -1f)]
    [InlineData(GgmlType.Q8_0, 0x00, 1f)]
    public void ExtremeQuantsAndActivationsStayExact(GgmlType type, byte quantByte, float activation)
    {
        const int rows = 32, columns = 128, tokens = 16;
        var rowBytes = GgmlTypes.ByteSize(type, columns);
        var blockBytes = GgmlTypes.BlockBytes(type);
        var data = new byte[rows * rowBytes];
        // Every byte after d: Q4_0's nibbles, Q8_0's quants, Q5_0's fifth bits and nibbles alike.
        int lo, hi;
        for (var block = 0; block < data.Length / blockBytes; block++)
        {
            BitConverter.TryWriteBytes(data.AsSpan(block * blockBytes), (Half)0.5f);
            data.AsSpan(block * blockBytes + 2, blockBytes - 2).Fill(quantByte);
        }
        (lo, hi) = type switch
        {
            GgmlType.Q8_0 => ((sbyte)quantByte, (sbyte)quantByte),
            GgmlType.Q5_0 => ((quantByte & 0x0F) + (quantByte == 0xFF ? 16 : 0) - 16, (quantByte >> 4) + (quantByte == 0xFF ? 16 : 0) - 16), // 0x00 or 0xFF: every fifth bit alike
            _ => ((quantByte & 0x0F) - 8, (quantByte >> 4) - 8),
        };
        var x = new float[tokens * columns];
        Array.Fill(x, activation);
        fixed (byte* pw = data)
        {
            using var packed = PackedQuantMatrix.Pack(type, pw, rowBytes, rows, columns, _pool);
            float[] Run(InstructionSet isa)
            {
                var y = new float[tokens * rows];
                fixed (float* px = x)
                fixed (float* py = y)
                    PackedMatMul.Apply(packed, px, py, tokens, isa, _pool);
                return y;
            }
            var twin = Run(InstructionSet.Scalar);
            // The twin against plain arithmetic: quant · 0.5 · activation summed over the row, to the f16 rounding of
            // the activation scale (a saturated 16-bit sum would be percents off).
            var expected = 0.5f * activation * (lo + hi) * 16 * (columns / 32);
            Assert.All(twin, v => Assert.True(MathF.Abs(v - expected) <= 1e-3f * MathF.Max(1f, MathF.Abs(expected)), $"{v} vs {expected}"));
            foreach (var isa in FastIsas) Assert.Equal(twin, Run(isa));
        }
    }

    /// <summary>
    /// Scales are converted with integer operations when none is infinite or NaN: subnormal, zero and negative-zero
    /// halves must still give the twin's bits; a matrix with an infinity or a NaN takes the table and gives them too.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.Q8_0, false)]
    [InlineData(GgmlType.Q4_0, false)]
    [InlineData(GgmlType.Q5_0, false)]
    [InlineData(GgmlType.Q8_0, true)]
    [InlineData(GgmlType.Q4_0, true)]
    [InlineData(GgmlType.Q5_0, true)]
    public void EveryKindOfScaleGivesTheTwinsBits(GgmlType type, bool nonFinite)
    {
        const int rows = 21, columns = 160;
        using var w = new RandomMatrix(type, rows, columns, seed: 77, negativeScales: true);
        var blockBytes = GgmlTypes.BlockBytes(type);
        ushort[] special = nonFinite ? [0x0001, 0x7C00, 0x83FF, 0xFE00, 0x0000] : [0x0001, 0x03FF, 0x8001, 0x0000, 0x8000, 0x0400];
        var blocks = rows * (columns / 32);
        for (var i = 0; i < special.Length; i++) *(ushort*)(w.Data + (i * 7 % blocks) * blockBytes) = special[i];
        using (var packed = PackedQuantMatrix.Pack(type, w.Data, w.RowBytes, rows, columns, _pool))
            Assert.Equal(!nonFinite, packed.FiniteScales);
        foreach (var tokens in new[] { 1, 4, 9 })
        {
            var x = RandomMatrix.Activations(tokens, columns, seed: tokens);
            var twin = Packed(w, x, tokens, InstructionSet.Scalar);
            foreach (var isa in FastIsas) Assert.Equal(twin, Packed(w, x, tokens, isa)); // NaN equals NaN here
        }
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void PackedRowsComeBackByteForByte(GgmlType type)
    {
        foreach (var (rows, columns, _) in Shapes)
        {
            using var w = new RandomMatrix(type, rows, columns, seed: rows + columns * 3);
            using var packed = PackedQuantMatrix.Pack(type, w.Data, w.RowBytes, rows, columns, _pool);
            var row = new byte[w.RowBytes];
            for (var r = 0; r < rows; r++)
            {
                packed.StoredRow(r, row);
                Assert.Equal(new ReadOnlySpan<byte>(w.Data + r * w.RowBytes, (int)w.RowBytes).ToArray(), row);
            }
        }
    }

    [Fact]
    public void Q5FifthBitsSpreadAndGatherBack()
    {
        var random = new Random(5);
        foreach (var qh in new uint[] { 0, 1, 0x80000000, 0xFFFFFFFF, 0x12345678 }.Concat(Enumerable.Range(0, 200).Select(_ => (uint)random.NextInt64(0, 1L << 32))))
        {
            var spread = PackedQuantMatrix.SpreadFifthBits(qh);
            for (var j = 0; j < 32; j++) // quant j = 4c + i sits in byte i, bit c
                Assert.Equal((qh >> j) & 1, (spread >> ((j % 4) * 8 + j / 4)) & 1);
            Assert.Equal(qh, PackedQuantMatrix.GatherFifthBits(spread));
        }
    }

    [Fact]
    public void WithoutVnniTheKernelEmulatesItAndEveryFormatRepacks()
    {
        if (!PackedMatMul.HasFastPath(InstructionSet.Avx2)) return; // no AVX2 here
        Assert.False(PackedMatMul.UsesVnni(InstructionSet.Avx2));
        Assert.Equal(System.Runtime.Intrinsics.X86.AvxVnni.IsSupported, PackedMatMul.UsesVnni(KernelIsa.Detected));
        Assert.False(PackedMatMul.Repacks(GgmlType.Q8_0, InstructionSet.Avx2)); // emulated, Q8_0 decode streams less than its stored rows
        Assert.Equal(System.Runtime.Intrinsics.X86.AvxVnni.IsSupported, PackedMatMul.Repacks(GgmlType.Q8_0, InstructionSet.AvxVnni));
        Assert.True(PackedMatMul.Repacks(GgmlType.Q4_0, InstructionSet.Avx2));
        Assert.False(PackedMatMul.Repacks(GgmlType.Q4_0, InstructionSet.Portable));
        Assert.True(PackedMatMul.Repacks(GgmlType.Q5_0, InstructionSet.Avx2));
        Assert.False(PackedMatMul.Repacks(GgmlType.Q4_1, InstructionSet.Avx2));
        Assert.Contains("repacked at load", MatMul.Describe(GgmlType.Q4_0, InstructionSet.Avx2));
        Assert.DoesNotContain("repacked", MatMul.Describe(GgmlType.Q4_0, InstructionSet.Portable));
    }

    [Fact]
    public void OnlyQ4RowsOfBoundedWidthTakeTheWidePath()
    {
        if (!PackedMatMul.HasFastPath(InstructionSet.Avx512)) return; // no AVX-512 BW here
        Assert.True(PackedMatMul.HasWidePath(GgmlType.Q4_0, PackedMatMul.MaxWideColumns, InstructionSet.Avx512));
        Assert.False(PackedMatMul.HasWidePath(GgmlType.Q4_0, PackedMatMul.MaxWideColumns + 32, InstructionSet.Avx512));
        Assert.False(PackedMatMul.HasWidePath(GgmlType.Q8_0, 64, InstructionSet.Avx512));
        Assert.False(PackedMatMul.HasWidePath(GgmlType.Q4_0, 64, InstructionSet.AvxVnni));
        Assert.False(PackedMatMul.HasWidePath(GgmlType.Q4_0, 64, InstructionSet.Avx2));
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
    public void OnlyWholeBlockQ8Q4AndQ5RowsPack()
    {
        Assert.True(PackedQuantMatrix.CanPack(GgmlType.Q8_0, 64));
        Assert.True(PackedQuantMatrix.CanPack(GgmlType.Q4_0, 32));
        Assert.True(PackedQuantMatrix.CanPack(GgmlType.Q5_0, 32));
        Assert.False(PackedQuantMatrix.CanPack(GgmlType.Q5_0, 16));
        Assert.False(PackedQuantMatrix.CanPack(GgmlType.Q5_1, 32));
        Assert.False(PackedQuantMatrix.CanPack(GgmlType.Q8_0, 48));
        Assert.False(PackedQuantMatrix.CanPack(GgmlType.F16, 64));
        Assert.False(PackedQuantMatrix.CanPack(GgmlType.Q4_K, 256));
        using var w = new RandomMatrix(GgmlType.F16, 8, 64, seed: 1);
        Assert.Throws<ArgumentException>(() => PackedQuantMatrix.Pack(GgmlType.F16, w.Data, w.RowBytes, 8, 64, _pool));
    }

    [Fact]
    public void APackedWeightMatrixMultipliesLikeTheUnpackedOne()
    {
        if (BestIsa is null) return; // no AVX2 here: nothing is packed
        using var w = new RandomMatrix(GgmlType.Q8_0, 40, 256, seed: 3);
        var x = RandomMatrix.Activations(6, 256, seed: 4);
        var plain = new WeightMatrix("w", GgmlType.Q8_0, 40, 256, w.Data);
        var expected = new float[6 * 40];
        plain.MatMul(x, expected, 6);
        using var packed = new WeightMatrix("w", GgmlType.Q8_0, 40, 256, w.Data);
        packed.PrepareForKernels(releaseMappedPages: false, BestIsa!.Value);
        Assert.True(packed.IsPacked);
        var actual = new float[6 * 40];
        packed.MatMul(x, actual, 6);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(MathF.Abs(expected[i] - actual[i]) <= 1e-4f * MathF.Max(1f, MathF.Abs(expected[i])), $"element {i}: {expected[i]} vs {actual[i]}");
    }

    [Theory]
    [InlineData(GgmlType.Q4_K)]
    [InlineData(GgmlType.Q6_K)]
    public void KQuantMatricesRunOnTheirStoredRowsAtEveryTier(GgmlType type)
    {
        // Issue 19: no widening at load. K-quants used to be requantized to Q8_0 and packed on a VNNI CPU; their own
        // kernels now run on the file's rows, so resident weight memory is the file's tensor bytes at every tier.
        const int rows = 21, columns = 512;
        using var w = new RandomMatrix(type, rows, columns, seed: 9);
        foreach (var isa in new[] { InstructionSet.Scalar, InstructionSet.Portable, InstructionSet.Avx2, InstructionSet.AvxVnni, InstructionSet.Avx512 })
        {
            Assert.False(PackedMatMul.Repacks(type, isa));
            if (!KernelIsa.IsSupported(isa)) continue;
            using var matrix = new WeightMatrix("k", type, rows, columns, w.Data);
            matrix.PrepareForKernels(releaseMappedPages: false, isa);
            Assert.False(matrix.IsPacked);
        }
    }

    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    public void AMatrixQuantizedAtLoadKeepsOnlyThePackedCopy(GgmlType type)
    {
        if (BestIsa is null) return; // no AVX2 here: nothing is packed
        var best = BestIsa!.Value;
        const int rows = 19, columns = 160, tokens = 5;
        using var source = new RandomMatrix(GgmlType.F32, rows, columns, seed: 21);
        var x = RandomMatrix.Activations(tokens, columns, seed: 22);
        using var owned = new WeightMatrix("q", GgmlType.F32, rows, columns, source.Data).Quantize(type);
        var stored = new byte[rows * owned.RowBytes];
        new ReadOnlySpan<byte>(owned.Data, stored.Length).CopyTo(stored);
        var plainRow = new float[columns];
        owned.DequantizeRow(7, plainRow);
        var plain = new float[tokens * rows];
        owned.MatMul(x, plain, tokens, InstructionSet.Portable);

        owned.PrepareForKernels(releaseMappedPages: false, best);
        Assert.True(owned.IsPacked);
        Assert.True(owned.Data == null); // the ggml-layout copy is freed: the weights are held once

        // Every row comes back byte for byte, lookups dequantize the same floats.
        var rebuilt = new byte[stored.Length];
        for (var r = 0; r < rows; r++) owned.StoredRow(r, rebuilt.AsSpan((int)(r * owned.RowBytes), (int)owned.RowBytes));
        Assert.Equal(stored, rebuilt);
        var row = new float[columns];
        owned.DequantizeRow(7, row);
        Assert.Equal(plainRow, row);

        // Every packed path, and below AVX2 the packed copy's scalar twin: all equal the twin over the same bytes.
        var twin = new float[tokens * rows];
        fixed (byte* pq = stored)
        fixed (float* px = x)
        fixed (float* py = twin)
        {
            using var packed = PackedQuantMatrix.Pack(type, pq, owned.RowBytes, rows, columns, _pool);
            PackedMatMul.Apply(packed, px, py, tokens, InstructionSet.Scalar, _pool);
        }
        var fast = new float[tokens * rows];
        owned.MatMul(x, fast, tokens, best);
        Assert.Equal(twin, fast);
        foreach (var isa in FastIsas.Append(InstructionSet.Portable))
        {
            var other = new float[tokens * rows];
            owned.MatMul(x, other, tokens, isa);
            Assert.Equal(twin, other);
        }
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
            foreach (var m in new[] { a, b, c }) m.PrepareForKernels(releaseMappedPages: false, KernelIsa.Active);
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
