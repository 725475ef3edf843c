using System.Runtime.InteropServices;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Model.Weights;

namespace Bulwark.Engine.Tests.Kernels;

/// <summary>
/// The K-quant and legacy block formats against ggml itself: the <c>dequantize_row_*</c> and
/// <c>quantize_row_q8_K_ref</c> exported by the libggml-base that LLamaSharp.Backend.Cpu ships (an
/// independent implementation), and the K-quant int8 kernels against the dequantized rows.
/// </summary>
public unsafe class KQuantTests : IDisposable
{
    private readonly WorkerPool _pool = new(2);

    public void Dispose() => _pool.Dispose();

    private static readonly Lazy<nint> Ggml = new(() =>
    {
        var path = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "noavx", "libggml-base.so");
        if (!File.Exists(path)) throw new FileNotFoundException($"ggml from LLamaSharp.Backend.Cpu is missing at {path}");
        return NativeLibrary.Load(path);
    });

    /// <summary>ggml's export name for a type: q4_K, q5_0, iq4_xs.</summary>
    private static string GgmlName(GgmlType type)
    {
        var name = type.ToString().ToLowerInvariant();
        return name.EndsWith("_k", StringComparison.Ordinal) ? name[..^1] + "K" : name;
    }

    private static float[] GgmlDequantize(GgmlType type, byte* blocks, int elements)
    {
        var function = (delegate* unmanaged<byte*, float*, long, void>)NativeLibrary.GetExport(Ggml.Value, "dequantize_row_" + GgmlName(type));
        var output = new float[elements];
        fixed (float* y = output) function(blocks, y, elements);
        return output;
    }

    public static TheoryData<GgmlType> NewTypes() =>
        [GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.Q5_K, GgmlType.Q3_K, GgmlType.Q2_K, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.IQ4_NL, GgmlType.IQ4_XS];

    public static TheoryData<GgmlType> KQuants() => [GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.Q5_K, GgmlType.Q3_K, GgmlType.Q2_K, GgmlType.IQ4_XS];

    [Theory]
    [MemberData(nameof(NewTypes))]
    public void DequantizeMatchesGgmlBitForBit(GgmlType type)
    {
        var columns = GgmlTypes.BlockSize(type) * 5;
        using var random = new RandomMatrix(type, 3, columns, seed: (int)type);
        var bytes = checked((int)(random.RowBytes * 3));
        var expected = GgmlDequantize(type, random.Data, 3 * columns);
        var actual = new float[3 * columns];
        Dequantize.Row(type, new ReadOnlySpan<byte>(random.Data, bytes), actual);
        Assert.Equal(expected, actual);
    }

    [Theory]
    [InlineData(GgmlType.Q4_K, 256, 144)]
    [InlineData(GgmlType.Q6_K, 256, 210)]
    [InlineData(GgmlType.Q5_K, 256, 176)]
    [InlineData(GgmlType.Q3_K, 256, 110)]
    [InlineData(GgmlType.Q2_K, 256, 84)]
    [InlineData(GgmlType.IQ4_XS, 256, 136)]
    [InlineData(GgmlType.Q4_1, 32, 20)]
    [InlineData(GgmlType.Q5_0, 32, 22)]
    [InlineData(GgmlType.Q5_1, 32, 24)]
    [InlineData(GgmlType.IQ4_NL, 32, 18)]
    public void BlocksHaveGgmlsGeometry(GgmlType type, int elements, int bytes)
    {
        Assert.Equal(elements, GgmlTypes.BlockSize(type));
        Assert.Equal(bytes, GgmlTypes.BlockBytes(type));
        Assert.True(Dequantize.IsSupported(type));
        Assert.True(MatMul.IsSupported(type));
        Assert.Equal(-1, GgmlTypes.ByteSize(type, elements - 1));
        Assert.Equal(bytes * 2L, GgmlTypes.ByteSize(type, elements * 2));
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(1f)]
    public void Q8KActivationsMatchGgmlsQuantizerBitForBit(float tie)
    {
        // Random rows, a zero block (d = 0), and a block whose largest magnitude occurs with both signs.
        var x = RandomMatrix.Activations(1, 256 * 4, seed: 9);
        Array.Clear(x, 256, 256);
        if (tie != 0) { x[600] = -3; x[700] = 3; }
        var expected = new byte[292 * 4];
        var function = (delegate* unmanaged<float*, byte*, long, void>)NativeLibrary.GetExport(Ggml.Value, "quantize_row_q8_K_ref");
        fixed (float* px = x)
        fixed (byte* py = expected)
            function(px, py, x.Length);
        foreach (var isa in new[] { InstructionSet.Scalar, InstructionSet.Portable }.Where(KernelIsa.IsSupported))
        {
            var q = new sbyte[256];
            var sums = new short[16];
            for (var b = 0; b < 4; b++)
            {
                float d;
                fixed (float* px = &x[b * 256])
                fixed (sbyte* pq = q)
                fixed (short* ps = sums)
                {
                    if (isa == InstructionSet.Scalar) Q8KActivations.QuantizeBlockScalar(px, pq, &d, ps);
                    else Q8KActivations.QuantizeBlockVector(px, pq, &d, ps);
                }
                var block = expected.AsSpan(b * 292, 292);
                Assert.Equal(MemoryMarshal.Read<float>(block), d);
                Assert.Equal(MemoryMarshal.Cast<byte, sbyte>(block.Slice(4, 256)).ToArray(), q);
                Assert.Equal(MemoryMarshal.Cast<byte, short>(block.Slice(260, 32)).ToArray(), sums);
            }
        }
    }

    /// <summary>
    /// The scalar K-quant kernel computes Σ dequantized weight × dequantized Q8_K activation: each
    /// block reader's quants, scales and minimums agree with the reference dequantizer.
    /// </summary>
    /// <summary>Q5_0, IQ4_NL, Q4_1 and Q5_1 run the Q8_0-activation kernel; the K-quants and IQ4_XS the Q8_K one.</summary>
    public static TheoryData<GgmlType> Int8Types() =>
        [GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.Q5_K, GgmlType.Q3_K, GgmlType.Q2_K, GgmlType.IQ4_XS, GgmlType.Q5_0, GgmlType.IQ4_NL, GgmlType.Q4_1, GgmlType.Q5_1];

    [Theory]
    [MemberData(nameof(Int8Types))]
    public void ScalarKernelEqualsTheDequantizedDotProduct(GgmlType type)
    {
        const int rows = 5, columns = 256 * 3, tokens = 2;
        using var w = new RandomMatrix(type, rows, columns, seed: 4, negativeScales: true);
        var x = RandomMatrix.Activations(tokens, columns, seed: 5);
        var y = w.Multiply(x, tokens, InstructionSet.Scalar, _pool);
        var row = new float[columns];
        for (var t = 0; t < tokens; t++)
        {
            var xq = GgmlTypes.BlockSize(type) == 256 ? DequantizedQ8K(x.AsSpan(t * columns, columns)) : DequantizedQ8_0(x.AsSpan(t * columns, columns));
            for (var r = 0; r < rows; r++)
            {
                Dequantize.Row(type, new ReadOnlySpan<byte>(w.Data + r * w.RowBytes, (int)w.RowBytes), row);
                double expected = 0, magnitude = 0;
                for (var i = 0; i < columns; i++)
                {
                    expected += (double)row[i] * xq[i];
                    magnitude += Math.Abs((double)row[i] * xq[i]);
                }
                Assert.True(Math.Abs(y[t * rows + r] - expected) <= 1e-5 * magnitude + 1e-6, $"{type} row {r} token {t}: {y[t * rows + r]} vs {expected}");
            }
        }
    }

    private static float[] DequantizedQ8K(ReadOnlySpan<float> x)
    {
        var result = new float[x.Length];
        var q = stackalloc sbyte[256];
        var sums = stackalloc short[16];
        for (var b = 0; b < x.Length / 256; b++)
        {
            float d;
            fixed (float* px = x.Slice(b * 256, 256)) Q8KActivations.QuantizeBlockScalar(px, q, &d, sums);
            for (var i = 0; i < 256; i++) result[b * 256 + i] = d * q[i];
        }
        return result;
    }

    private static float[] DequantizedQ8_0(ReadOnlySpan<float> x)
    {
        var result = new float[x.Length];
        var q = stackalloc sbyte[32];
        for (var b = 0; b < x.Length / 32; b++)
        {
            float d;
            fixed (float* px = x.Slice(b * 32, 32)) Q8Activations.QuantizeBlockScalar(px, q, &d);
            for (var i = 0; i < 32; i++) result[b * 32 + i] = d * q[i];
        }
        return result;
    }

    /// <summary>Every tier does the same integer sums and the same float steps, so each equals the scalar twin exactly.</summary>
    [Theory]
    [MemberData(nameof(KQuants))]
    public void EverySimdTierEqualsTheScalarTwinBitForBit(GgmlType type)
    {
        foreach (var (rows, blocks, tokens) in new[] { (1, 1, 1), (7, 2, 3), (9, 3, 4), (13, 1, 9), (33, 2, 70) })
        {
            using var w = new RandomMatrix(type, rows, blocks * 256, seed: rows * 7 + blocks, negativeScales: true);
            var x = RandomMatrix.Activations(tokens, blocks * 256, seed: tokens);
            var expected = w.Multiply(x, tokens, InstructionSet.Scalar, _pool);
            foreach (var isa in Enum.GetValues<InstructionSet>().Where(i => i != InstructionSet.Scalar && KernelIsa.IsSupported(i)))
                Assert.Equal(expected, w.Multiply(x, tokens, isa, _pool));
        }
    }

    /// <summary>
    /// The tile kernel straight (no row chunking by the matmul): tokens in tiles of 8, then 4, then one at a
    /// time, one row at a time; every count at, below and above those edges, and a tile
    /// that starts past row and token 0, equal to the scalar twin bit for bit on every tier.
    /// </summary>
    [Theory]
    [MemberData(nameof(KQuants))]
    public void TileEdgesEqualTheScalarTwinBitForBit(GgmlType type)
    {
        const int blocks = 2, columns = blocks * 256, maxRows = 10, maxTokens = 18;
        using var w = new RandomMatrix(type, maxRows, columns, seed: 11, negativeScales: true);
        var x = RandomMatrix.Activations(maxTokens, columns, seed: 12);
        var activations = Q8KActivations.ForThread(maxTokens, columns).Rows;
        fixed (float* px = x) activations.Quantize(px, 0, maxTokens, InstructionSet.Scalar);
        var isas = Enum.GetValues<InstructionSet>().Where(i => i != InstructionSet.Scalar && KernelIsa.IsSupported(i)).ToArray();
        Assert.NotEmpty(isas);
        foreach (var (r0, r1) in new[] { (0, 1), (0, 3), (0, 4), (0, 5), (0, 8), (1, 10), (2, 9) })
        foreach (var (t0, t1) in new[] { (0, 1), (0, 3), (0, 4), (0, 5), (0, 7), (0, 8), (0, 9), (0, 12), (0, 13), (0, 16), (0, 17), (1, 18), (5, 17) })
        {
            var expected = Tile(type, InstructionSet.Scalar, w, activations, r0, r1, t0, t1);
            foreach (var isa in isas)
            {
                var actual = Tile(type, isa, w, activations, r0, r1, t0, t1);
                for (var i = 0; i < expected.Length; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                        $"{type} {isa} rows [{r0}, {r1}) tokens [{t0}, {t1}): element {i} scalar {expected[i]} simd {actual[i]}");
            }
        }
    }

    /// <summary>
    /// Decode (fewer than 4 tokens, one row at a time) takes super-blocks four at a time, the rest one by one,
    /// through per-type AVX2 block sums for Q4_K, Q5_K and Q6_K: block counts below, at and above 4 and 8, each
    /// equal to the scalar twin bit for bit on every tier.
    /// </summary>
    [Theory]
    [MemberData(nameof(KQuants))]
    public void DecodeBlockGroupsEqualTheScalarTwinBitForBit(GgmlType type)
    {
        var isas = Enum.GetValues<InstructionSet>().Where(i => i != InstructionSet.Scalar && KernelIsa.IsSupported(i)).ToArray();
        foreach (var blocks in new[] { 1, 3, 4, 5, 7, 8, 9, 22 })
        {
            const int rows = 5, tokens = 3;
            var columns = blocks * 256;
            using var w = new RandomMatrix(type, rows, columns, seed: 100 + blocks, negativeScales: true);
            var x = RandomMatrix.Activations(tokens, columns, seed: 200 + blocks);
            var activations = Q8KActivations.ForThread(tokens, columns).Rows;
            fixed (float* px = x) activations.Quantize(px, 0, tokens, InstructionSet.Scalar);
            var expected = Tile(type, InstructionSet.Scalar, w, activations, 0, rows, 0, tokens);
            foreach (var isa in isas)
            {
                var actual = Tile(type, isa, w, activations, 0, rows, 0, tokens);
                for (var i = 0; i < expected.Length; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                        $"{type} {isa} {blocks} blocks: element {i} scalar {expected[i]} simd {actual[i]}");
            }
        }
    }

    /// <summary>
    /// The VNNI pair packs each 4 products' sum to 16 bits, exact only while |sum| ≤ 32767: the largest quants every
    /// format holds (every quant byte 0xFF: Q6_K 63, Q5_K 31, ...) against activations all +127, all −127 and
    /// alternating in sign every 4 (4·63·127 = 32004), with the largest and most negative scales, through decode
    /// and the 4- and 8-token tiles, equal to the scalar twin bit for bit on every tier.
    /// </summary>
    [Theory]
    [MemberData(nameof(KQuants))]
    public void ExtremeQuantsAndActivationsStayExact(GgmlType type)
    {
        const int rows = 3, blocks = 5, tokens = 13, columns = blocks * 256;
        var isas = Enum.GetValues<InstructionSet>().Where(i => i != InstructionSet.Scalar && KernelIsa.IsSupported(i)).ToArray();
        foreach (var signedScale in new byte[] { 0xFF, 0x7F, 0x80 })
        {
            using var w = new RandomMatrix(type, rows, columns, seed: 1);
            var blockBytes = GgmlTypes.BlockBytes(type);
            new Span<byte>(w.Data, (int)(w.RowBytes * rows)).Fill(0xFF);
            for (var b = 0; b < rows * blocks; b++)
            {
                var block = w.Data + b * blockBytes;
                // d (and dmin) 1.0 where each format keeps them; Q6_K's signed per-16 scales at their limits.
                foreach (var offset in type switch { GgmlType.Q2_K => new[] { 80, 82 }, GgmlType.Q3_K => [108], GgmlType.Q6_K => [208], _ => [0, 2] })
                    *(ushort*)(block + offset) = 0x3C00;
                if (type == GgmlType.Q6_K) new Span<byte>(block + 192, 16).Fill(signedScale);
            }
            var activations = Q8KActivations.ForThread(tokens, columns).Rows;
            for (var t = 0; t < tokens; t++)
            for (var b = 0; b < blocks; b++)
            {
                var index = (long)t * blocks + b;
                var q = activations.Quants + index * Q8KActivations.Block;
                for (var i = 0; i < Q8KActivations.Block; i++)
                    q[i] = (t % 3) switch { 0 => 127, 1 => -127, _ => (i / 4 % 2 == 0) ? (sbyte)127 : (sbyte)-127 };
                for (var g = 0; g < Q8KActivations.Groups; g++)
                {
                    var sum = 0;
                    for (var i = 0; i < 16; i++) sum += q[g * 16 + i];
                    activations.Sums[index * Q8KActivations.Groups + g] = (short)sum;
                }
                activations.Scales[index] = 1f / 127;
            }
            foreach (var (t0, t1) in new[] { (0, 1), (0, 4), (0, 8), (0, tokens) })
            {
                var expected = Tile(type, InstructionSet.Scalar, w, activations, 0, rows, t0, t1);
                foreach (var isa in isas)
                {
                    var actual = Tile(type, isa, w, activations, 0, rows, t0, t1);
                    for (var i = 0; i < expected.Length; i++)
                        Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                            $"{type} {isa} scale byte {signedScale:x2} tokens [{t0}, {t1}): element {i} scalar {expected[i]} simd {actual[i]}");
                }
            }
        }
    }

    /// <summary>
    /// Q4_K/Q5_K's scale regrouping in one vector register equals ggml's three-word scalar form for every bit of the
    /// 12 scale bytes (each bit set alone, all set, none) and 2,000 random blocks; the scales and minimums it yields
    /// equal the reference dequantizer's get_scale_min_k4.
    /// </summary>
    [Fact]
    public void PackedScalesEqualTheScalarRegrouping()
    {
        var random = new Random(5);
        var block = stackalloc byte[16];
        var patterns = new List<byte[]> { new byte[16], Enumerable.Repeat((byte)0xFF, 16).ToArray() };
        for (var bit = 32; bit < 128; bit++)
        {
            var one = new byte[16];
            one[bit / 8] = (byte)(1 << (bit % 8));
            patterns.Add(one);
        }
        for (var i = 0; i < 2000; i++)
        {
            var bytes = new byte[16];
            random.NextBytes(bytes);
            patterns.Add(bytes);
        }
        Span<int> reference = stackalloc int[16];
        foreach (var pattern in patterns)
        {
            pattern.CopyTo(new Span<byte>(block, 16));
            var packed = KQuantScales.Packed(block);
            Assert.Equal(KQuantScales.PackedScalar(block), packed);
            for (var j = 0; j < 8; j++)
            {
                var (scale, min) = Dequantize.ScaleMinK4(j, new ReadOnlySpan<byte>(block + 4, 12));
                Assert.Equal(scale, packed[j]);
                Assert.Equal(min, packed[8 + j]);
            }
        }
    }

    /// <summary>One tile into a fresh output of maxRows × tokens, NaN outside the tile (so a write out of it shows).</summary>
    private static float[] Tile(GgmlType type, InstructionSet isa, RandomMatrix w, Q8KRows x, int r0, int r1, int t0, int t1)
    {
        var y = new float[t1 * w.Rows];
        Array.Fill(y, float.NaN);
        fixed (float* py = y) KQuantKernels.Tile(type, isa, w.Data, w.RowBytes, r0, r1, x, t0, t1, py, w.Rows);
        for (var t = t0; t < t1; t++)
        for (var r = r0; r < r1; r++)
            Assert.False(float.IsNaN(y[t * w.Rows + r]), $"{type} {isa}: row {r} token {t} not written");
        return y;
    }

    [Theory]
    [MemberData(nameof(NewTypes))]
    public void AWeightMatrixMultipliesAsItsDequantizedRows(GgmlType type)
    {
        var columns = 512;
        using var random = new RandomMatrix(type, 5, columns, seed: 2);
        var matrix = new WeightMatrix("output.weight", type, 5, columns, random.Data);
        matrix.PrepareForKernels(releaseMappedPages: false);
        // Q5_0 is repacked where the packed kernel runs (as many bytes as the file's); every other type runs as stored.
        Assert.Equal(PackedMatMul.Repacks(type, KernelIsa.Active), matrix.IsPacked);
        var x = RandomMatrix.Activations(3, columns, seed: 3);
        var y = new float[15];
        matrix.MatMul(x, y, 3);
        var row = new float[columns];
        for (var r = 0; r < 5; r++)
        {
            matrix.DequantizeRow(r, row);
            for (var t = 0; t < 3; t++)
            {
                double expected = 0, magnitude = 0;
                for (var i = 0; i < columns; i++)
                {
                    expected += (double)row[i] * x[t * columns + i];
                    magnitude += Math.Abs((double)row[i] * x[t * columns + i]);
                }
                // 8-bit activations: each product is off by at most half a step of its block's largest value.
                Assert.True(Math.Abs(y[t * 5 + r] - expected) <= 0.01 * magnitude + 1e-4, $"row {r} token {t}: {y[t * 5 + r]} vs {expected}");
            }
        }
    }

    [Fact]
    public void EveryTypeTheLoaderAcceptsHasAMatMulKernel()
    {
        foreach (var type in Enum.GetValues<GgmlType>())
            Assert.Equal(Dequantize.IsSupported(type), MatMul.IsSupported(type));
    }

    [Fact]
    public void KQuantsCannotBeWrittenByTheFloatQuantizer()
    {
        var e = Assert.Throws<NotSupportedException>(() => Quantize.RowBytes(GgmlType.Q4_K, 256));
        Assert.Contains("Q4_K cannot be written", e.Message);
    }
}
