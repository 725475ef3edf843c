using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// A ggml weight block of 32 values with an f16 scale in its first two bytes, as the int8 kernels
/// see it: its 32 quants as signed bytes. Struct generics let the JIT inline each format into
/// each kernel.
/// </summary>
internal unsafe interface IQuantBlock
{
    static abstract int Bytes { get; }

    /// <summary>The block's 32 quants, element i in lane i.</summary>
    static abstract Vector256<sbyte> Quants(byte* block);

    /// <summary>Quant i of the block (the scalar twin of <see cref="Quants"/>).</summary>
    static abstract int Quant(byte* block, int i);

    /// <summary>Whether values are d·q + m (Q4_1, Q5_1) rather than d·q: the kernel then needs each activation block's Σq.</summary>
    static virtual bool HasMin => false;

    /// <summary>The block's m (an f16 at byte 2 for Q4_1/Q5_1).</summary>
    static virtual float Min(byte* block) => 0;
}

/// <summary>
/// Q8_0/Q4_0/Q5_0/IQ4_NL weight rows times 8-bit activation rows (<see cref="Q8Activations"/>): per block an
/// integer dot product, scaled by both blocks' scales and summed in float, as ggml's vec_dot_q8_0_q8_0
/// and vec_dot_q4_0_q8_0. A tile is a range of rows × a range of tokens; each weight block is loaded
/// once per 4 tokens (the GEMM micro-kernel) so prefill and batched decode reuse it from registers.
/// These run on the weights as stored (ggml's block layout) when they are not repacked for
/// <see cref="PackedMatMul"/>; each format's block reader is in Q8_0Kernels.cs, Q4_0Kernels.cs and Q5_0Kernels.cs.
/// </summary>
internal static unsafe class QuantizedKernels
{
    public static bool Handles(GgmlType type) => type is GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q5_0 or GgmlType.IQ4_NL || HasMin(type);

    /// <summary>Types whose activations must carry Σq per block (<see cref="Q8Rows.Sums"/> with offset 1).</summary>
    public static bool HasMin(GgmlType type) => type is GgmlType.Q4_1 or GgmlType.Q5_1;

    /// <summary>The code <paramref name="isa"/> runs, for <c>bulwark info</c>: AVX-512 runs the 256-bit kernel.</summary>
    public static string Describe(InstructionSet isa) => isa switch
    {
        InstructionSet.Avx512 => AvxVnni.IsSupported ? "AVX-VNNI 256-bit" : "AVX2 256-bit",
        _ => isa.ToString(),
    };

    /// <summary>y[t * yStride + r] = row r · activation t, for r in [r0, r1) and t in [t0, t1).</summary>
    public static void Tile(GgmlType type, InstructionSet isa, byte* w, long rowBytes, int r0, int r1,
        Q8Rows x, int t0, int t1, float* y, int yStride)
    {
        if (type == GgmlType.Q8_0) Tile<Q8_0Block>(isa, w, rowBytes, r0, r1, x, t0, t1, y, yStride);
        else if (type == GgmlType.Q4_0) Tile<Q4_0Block>(isa, w, rowBytes, r0, r1, x, t0, t1, y, yStride);
        else if (type == GgmlType.Q5_0) Tile<Q5_0Block>(isa, w, rowBytes, r0, r1, x, t0, t1, y, yStride);
        else if (type == GgmlType.IQ4_NL) Tile<IQ4_NLBlock>(isa, w, rowBytes, r0, r1, x, t0, t1, y, yStride);
        else if (type == GgmlType.Q4_1) Tile<Q4_1Block>(isa, w, rowBytes, r0, r1, x, t0, t1, y, yStride);
        else if (type == GgmlType.Q5_1) Tile<Q5_1Block>(isa, w, rowBytes, r0, r1, x, t0, t1, y, yStride);
        else throw new NotSupportedException($"no int8 kernel for {type}");
    }

    private static void Tile<TB>(InstructionSet isa, byte* w, long rowBytes, int r0, int r1,
        Q8Rows x, int t0, int t1, float* y, int yStride) where TB : IQuantBlock
    {
        switch (isa)
        {
            case InstructionSet.Scalar: TileScalar<TB>(w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            case InstructionSet.Portable: Tile256<TB, PortableDot>(w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            case InstructionSet.Avx2: Tile256<TB, Avx2Dot>(w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            case InstructionSet.AvxVnni: Tile256<TB, VnniDot>(w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            // At AVX-512 the 256-bit code runs: a 512-bit vpmaddubsw kernel (two blocks per instruction) measured
            // slower on Zen 4 for every type here (Q5_0 GEMM 11-17 against 22-24 GMAC/s, Q8_0 25 against 29-34).
            case InstructionSet.Avx512 when AvxVnni.IsSupported: Tile256<TB, VnniDot>(w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            case InstructionSet.Avx512: Tile256<TB, Avx2Dot>(w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            default: throw new ArgumentOutOfRangeException(nameof(isa), isa, "unknown instruction set");
        }
        if (TB.HasMin && isa != InstructionSet.Scalar) AddMins<TB>(w, rowBytes, r0, r1, x, t0, t1, y, yStride);
    }

    /// <summary>
    /// Q4_1/Q5_1's m·Σx term, y += Σ_b m_b·s_b with Q8_1's s = f16(d_x·Σq_x), after the quants' dot products (it does not depend on
    /// them, so the SIMD loops stay the ones every format shares; ggml's vec_dot_q4_1_q8_1 adds the same).
    /// </summary>
    private static void AddMins<TB>(byte* w, long rowBytes, int r0, int r1, Q8Rows x, int t0, int t1, float* y, int yStride)
        where TB : IQuantBlock
    {
        var blocks = x.Blocks;
        for (var r = r0; r < r1; r++)
        {
            var row = w + r * rowBytes;
            for (var t = t0; t < t1; t++)
            {
                var sum = 0f;
                for (var b = 0; b < blocks; b++) sum += TB.Min(row + b * TB.Bytes) * x.ScaledSum((long)t * blocks + b);
                y[(long)t * yStride + r] += sum;
            }
        }
    }

    /// <summary>The scalar twin: exact integer sums per block, float sums in block order.</summary>
    private static void TileScalar<TB>(byte* w, long rowBytes, int r0, int r1, Q8Rows x, int t0, int t1, float* y, int yStride)
        where TB : IQuantBlock
    {
        var blocks = x.Blocks;
        for (var r = r0; r < r1; r++)
        {
            var row = w + r * rowBytes;
            for (var t = t0; t < t1; t++)
            {
                var xq = x.Quants + (long)t * blocks * 32;
                var xs = x.Scales + (long)t * blocks;
                var sum = 0f;
                for (var b = 0; b < blocks; b++)
                {
                    var block = row + b * TB.Bytes;
                    var sumi = 0;
                    var sumq = 0;
                    for (var i = 0; i < 32; i++)
                    {
                        sumi += TB.Quant(block, i) * xq[b * 32 + i];
                        sumq += xq[b * 32 + i];
                    }
                    sum += sumi * (HalfTable.ToSingle(block) * xs[b]);
                    if (TB.HasMin) sum += TB.Min(block) * (float)(Half)(xs[b] * sumq); // Q8_1 keeps s = d·Σq as f16
                }
                y[(long)t * yStride + r] = sum;
            }
        }
    }

    private static void Tile256<TB, TD>(byte* w, long rowBytes, int r0, int r1, Q8Rows x, int t0, int t1, float* y, int yStride)
        where TB : IQuantBlock where TD : IInt8Dot
    {
        var blocks = x.Blocks;
        var tokenQuants = (long)blocks * 32;
        for (var r = r0; r < r1; r++)
        {
            var row = w + r * rowBytes;
            var t = t0;
            for (; t + 4 <= t1; t += 4)
                Dot4x256<TB, TD>(row, blocks, x.Quants + t * tokenQuants, x.Scales + (long)t * blocks, tokenQuants, blocks, y + (long)t * yStride + r, yStride);
            for (; t < t1; t++)
                y[(long)t * yStride + r] = Dot1x256<TB, TD>(row, blocks, x.Quants + t * tokenQuants, x.Scales + (long)t * blocks);
        }
    }

    /// <summary>
    /// One weight row against one token, summing in exactly <see cref="Dot4x256{TB, TD}"/>'s order for each of its tokens
    /// (four-block groups, then single blocks, one accumulator), so a token's result does not depend on the tile it
    /// falls in: decoding a position alone equals the same position in a verification or prefill batch bit for bit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot1x256<TB, TD>(byte* row, int blocks, sbyte* xq, float* xs)
        where TB : IQuantBlock where TD : IInt8Dot
    {
        var acc = Vector256<float>.Zero;
        var b = 0;
        if (Avx2.IsSupported && typeof(TD) != typeof(PortableDot))
        {
            for (; b + 4 <= blocks; b += 4)
            {
                var block = row + b * TB.Bytes;
                var d = Vector128.Create(HalfTable.ToSingle(block), HalfTable.ToSingle(block + TB.Bytes), HalfTable.ToSingle(block + 2 * TB.Bytes), HalfTable.ToSingle(block + 3 * TB.Bytes));
                var sums = Sum4Blocks<TD>(TB.Quants(block), TB.Quants(block + TB.Bytes), TB.Quants(block + 2 * TB.Bytes), TB.Quants(block + 3 * TB.Bytes), xq + b * 32);
                acc = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(sums), Scales4(d, xs + b), acc);
            }
        }
        for (; b < blocks; b++)
        {
            var block = row + b * TB.Bytes;
            acc = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TD.Dot(TB.Quants(block), Vector256.Load(xq + b * 32))), Vector256.Create(HalfTable.ToSingle(block) * xs[b]), acc);
        }
        return Vector256.Sum(acc);
    }

    /// <summary>One weight row against 4 tokens: each weight block is unpacked once for all 4.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4x256<TB, TD>(byte* row, int blocks, sbyte* xq, float* xs, long qStride, int sStride, float* y, int yStride)
        where TB : IQuantBlock where TD : IInt8Dot
    {
        var a0 = Vector256<float>.Zero;
        var a1 = Vector256<float>.Zero;
        var a2 = Vector256<float>.Zero;
        var a3 = Vector256<float>.Zero;
        var q1 = xq + qStride;
        var q2 = q1 + qStride;
        var q3 = q2 + qStride;
        var s1 = xs + sStride;
        var s2 = s1 + sStride;
        var s3 = s2 + sStride;
        var b = 0;
        if (Avx2.IsSupported && typeof(TD) != typeof(PortableDot))
        {
            // Four blocks at a time: their integer sums packed into one vector (three vphaddd), so each
            // token pays one conversion and one FMA per 4 blocks instead of per block.
            for (; b + 4 <= blocks; b += 4)
            {
                var block = row + b * TB.Bytes;
                var w0 = TB.Quants(block);
                var w1 = TB.Quants(block + TB.Bytes);
                var w2 = TB.Quants(block + 2 * TB.Bytes);
                var w3 = TB.Quants(block + 3 * TB.Bytes);
                var d = Vector128.Create(HalfTable.ToSingle(block), HalfTable.ToSingle(block + TB.Bytes), HalfTable.ToSingle(block + 2 * TB.Bytes), HalfTable.ToSingle(block + 3 * TB.Bytes));
                var o = b * 32;
                a0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Sum4Blocks<TD>(w0, w1, w2, w3, xq + o)), Scales4(d, xs + b), a0);
                a1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Sum4Blocks<TD>(w0, w1, w2, w3, q1 + o)), Scales4(d, s1 + b), a1);
                a2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Sum4Blocks<TD>(w0, w1, w2, w3, q2 + o)), Scales4(d, s2 + b), a2);
                a3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Sum4Blocks<TD>(w0, w1, w2, w3, q3 + o)), Scales4(d, s3 + b), a3);
            }
        }
        for (; b < blocks; b++)
        {
            var block = row + b * TB.Bytes;
            var wq = TB.Quants(block);
            var d = HalfTable.ToSingle(block);
            var o = b * 32;
            a0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TD.Dot(wq, Vector256.Load(xq + o))), Vector256.Create(d * xs[b]), a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TD.Dot(wq, Vector256.Load(q1 + o))), Vector256.Create(d * s1[b]), a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TD.Dot(wq, Vector256.Load(q2 + o))), Vector256.Create(d * s2[b]), a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TD.Dot(wq, Vector256.Load(q3 + o))), Vector256.Create(d * s3[b]), a3);
        }
        y[0] = Vector256.Sum(a0);
        y[yStride] = Vector256.Sum(a1);
        y[2L * yStride] = Vector256.Sum(a2);
        y[3L * yStride] = Vector256.Sum(a3);
    }

    /// <summary>
    /// Four consecutive blocks' dot products against <paramref name="q"/>: lane i (and i + 4) holds part of block i's
    /// sum, each 128-bit half [block 0, 1, 2, 3], as <see cref="Scales4"/> lays out the scales.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Sum4Blocks<TD>(Vector256<sbyte> w0, Vector256<sbyte> w1, Vector256<sbyte> w2, Vector256<sbyte> w3, sbyte* q)
        where TD : IInt8Dot =>
        Avx2.HorizontalAdd(
            Avx2.HorizontalAdd(TD.Dot(w0, Vector256.Load(q)), TD.Dot(w1, Vector256.Load(q + 32))),
            Avx2.HorizontalAdd(TD.Dot(w2, Vector256.Load(q + 64)), TD.Dot(w3, Vector256.Load(q + 96))));

    /// <summary>The four blocks' weight scale × activation scale, in both halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Scales4(Vector128<float> d, float* xs)
    {
        var s = d * Vector128.Load(xs);
        return Vector256.Create(s, s);
    }
}
