using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// A K-quant super-block of 256 weights as the int8 kernels see it. Every K-quant fits one form:
/// weight i = d·scale[i/16]·q_i − dmin·min[i/16] with q_i an unsigned small integer (Q2_K 0-3, Q3_K
/// 0-7, Q4_K 0-15, Q5_K 0-31, Q6_K 0-63), integer scales and minimums per 16 values (Q4_K/Q5_K's
/// per-32 pairs repeat; Q6_K's and Q3_K's signed offsets become a minimum of 32·scale or 4·scale
/// with dmin = d). So one loop serves them all: Σ scale·(q·x) and Σ min·(Σx per 16) as exact integers
/// against Q8_K activations, two float multiplies per super-block (as ggml's vec_dot_q*_K_q8_K).
/// </summary>
internal unsafe interface IKQuantBlock
{
    static abstract int Bytes { get; }

    /// <summary>The 16 scales and 16 minimum coefficients (one per 16 values), and the block's d and dmin.</summary>
    static abstract void Scales(byte* block, short* scales, short* mins, out float d, out float dmin);

    /// <summary>Unsigned quants of values 32c..32c+31, value 32c+i in byte i.</summary>
    static abstract Vector256<byte> Chunk(byte* block, int c);

    /// <summary>Unsigned quant of value i (the scalar twin of <see cref="Chunk"/>).</summary>
    static abstract int Quant(byte* block, int i);

    /// <summary>Whether <see cref="Chunk"/> holds signed values (IQ4_XS's levels) rather than unsigned quants.</summary>
    static virtual bool Signed => false;

    /// <summary>Chunk c's two scales for <see cref="IKQuantDot.Dot"/>: scales[2c] in shorts 0-7, scales[2c+1] in 8-15.</summary>
    static virtual Vector256<short> ChunkScales(short* scales, int c) =>
        Vector256.Create(Vector128.Create(scales[2 * c]), Vector128.Create(scales[2 * c + 1]));
}

/// <summary>One instruction set's integer arithmetic for <see cref="KQuantKernels"/>.</summary>
internal unsafe interface IKQuantDot
{
    /// <summary>
    /// 32 unsigned weight quants times 32 activation quants, the first 16 products times
    /// <paramref name="scales"/>[0], the last 16 times <paramref name="scales"/>[8] (the vector holds
    /// each scale 8 times); lanes whose total is the scaled sum.
    /// </summary>
    static abstract Vector256<int> Dot(Vector256<byte> w, Vector256<sbyte> x, Vector256<short> scales);

    /// <summary>As <see cref="Dot"/> for signed weights in [−127, 127].</summary>
    static abstract Vector256<int> DotSigned(Vector256<sbyte> w, Vector256<sbyte> x, Vector256<short> scales);

    /// <summary>Σ mins[g]·sums[g] over 16 groups.</summary>
    static abstract int MinSum(short* mins, short* sums);

    /// <summary>Lanes whose total is <see cref="MinSum"/>, <paramref name="mins"/> already loaded (one per token or row).</summary>
    static abstract Vector256<int> MinProducts(Vector256<short> mins, short* sums);

    /// <summary>The totals of four lane vectors, [Σa, Σb, Σc, Σd]: one reduction for four dot products instead of four.</summary>
    static abstract Vector128<int> Sum4(Vector256<int> a, Vector256<int> b, Vector256<int> c, Vector256<int> d);
}

/// <summary>
/// AVX2 (as ggml's AVX2 K-quant dot products): <c>vpmaddubsw</c> multiplies the unsigned quants by the
/// signed activations and adds pairs to int16 (at most 63·127·2, so never saturating), then
/// <c>vpmaddwd</c> by the 16-value scales adds pairs to int32.
/// </summary>
internal unsafe struct Avx2KDot : IKQuantDot
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(Vector256<byte> w, Vector256<sbyte> x, Vector256<short> scales) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w, x), scales);

    /// <summary>|w| times x with w's sign (vpsignb), as ggml's mul_sum_i8_pairs: |w|·|x| ≤ 127·127, so a pair never saturates.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> DotSigned(Vector256<sbyte> w, Vector256<sbyte> x, Vector256<short> scales) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(x, w)), scales);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int MinSum(short* mins, short* sums) =>
        Vector256.Sum(Avx2.MultiplyAddAdjacent(Vector256.Load(mins), Vector256.Load(sums)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> MinProducts(Vector256<short> mins, short* sums) => Avx2.MultiplyAddAdjacent(mins, Vector256.Load(sums));

    /// <summary>
    /// Three <c>vphaddd</c>: within each 128-bit half, [a0+a1, a2+a3, b0+b1, b2+b3] and the same for c, d, then
    /// [Σa, Σb, Σc, Σd] of that half; the halves added. Integer sums, so any order gives the same totals.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Sum4(Vector256<int> a, Vector256<int> b, Vector256<int> c, Vector256<int> d)
    {
        var h = Avx2.HorizontalAdd(Avx2.HorizontalAdd(a, b), Avx2.HorizontalAdd(c, d));
        return h.GetLower() + h.GetUpper();
    }
}

/// <summary>
/// AVX-VNNI: the same exact integers as <see cref="Avx2KDot"/> with fewer instructions for two chunks at a time
/// (<see cref="Pair"/>). Single-chunk operations are <see cref="Avx2KDot"/>'s (the signed IQ4_XS and the
/// odd-chunk forms have no VNNI shape).
/// </summary>
internal unsafe struct VnniKDot : IKQuantDot
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(Vector256<byte> w, Vector256<sbyte> x, Vector256<short> scales) => Avx2KDot.Dot(w, x, scales);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> DotSigned(Vector256<sbyte> w, Vector256<sbyte> x, Vector256<short> scales) => Avx2KDot.DotSigned(w, x, scales);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int MinSum(short* mins, short* sums) => Avx2KDot.MinSum(mins, sums);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> MinProducts(Vector256<short> mins, short* sums) => Avx2KDot.MinProducts(mins, sums);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Sum4(Vector256<int> a, Vector256<int> b, Vector256<int> c, Vector256<int> d) => Avx2KDot.Sum4(a, b, c, d);

    /// <summary>
    /// <paramref name="acc"/> plus two chunks' scaled products: <c>vpdpbusd</c> sums each 4 products of a chunk
    /// (unsigned quants ≤ 63 times activations in [−127, 127]: |sum| ≤ 4·63·127 = 32004, so it fits 16 bits), the
    /// two chunks' sums are packed to 16 bits (<c>vpackssdw</c>, exact: nothing reaches the saturation), and one
    /// <c>vpdpwssd</c> multiplies them by their per-16 scales and adds pairs to <paramref name="acc"/>: 4
    /// instructions for two chunks where <c>vpmaddubsw</c>, <c>vpmaddwd</c> and an add took 6.
    /// </summary>
    /// <param name="scales">
    /// <see cref="PairScales"/>' arrangement (<c>vpackssdw</c>'s order within each 128-bit half): shorts 0-3 the
    /// scale of chunk a's values 0-15, 4-7 chunk b's values 0-15, 8-11 chunk a's values 16-31, 12-15 chunk b's.
    /// </param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Pair(Vector256<int> acc, Vector256<byte> a, Vector256<sbyte> xa, Vector256<byte> b, Vector256<sbyte> xb, Vector256<short> scales)
    {
        var sa = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, a, xa);
        var sb = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, b, xb);
        return AvxVnni.MultiplyWideningAndAdd(acc, Avx2.PackSignedSaturate(sa, sb), scales);
    }

    /// <summary>
    /// <see cref="Pair"/>'s scales for chunks c and c+1 from the 16 per-16 scales (<see cref="IKQuantBlock.Scales"/>):
    /// scales[2c], [2c+2] in the low half, [2c+1], [2c+3] in the high half, each four times.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> PairScales(short* scales, int c)
    {
        var four = Vector256.Create(*(long*)(scales + 2 * c)).AsByte();
        return Avx2.Shuffle(four, Vector256.Create(
            (byte)0, 1, 0, 1, 0, 1, 0, 1, 4, 5, 4, 5, 4, 5, 4, 5,
            2, 3, 2, 3, 2, 3, 2, 3, 6, 7, 6, 7, 6, 7, 6, 7)).AsInt16();
    }
}

/// <summary>Portable: widen to int16, multiply, widen to int32, scale. Any CPU .NET vectorizes.</summary>
internal unsafe struct PortableKDot : IKQuantDot
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(Vector256<byte> w, Vector256<sbyte> x, Vector256<short> scales)
    {
        var (wl, wh) = Vector256.Widen(w);
        return Products(wl.AsInt16(), wh.AsInt16(), x, scales);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> DotSigned(Vector256<sbyte> w, Vector256<sbyte> x, Vector256<short> scales)
    {
        var (wl, wh) = Vector256.Widen(w);
        return Products(wl, wh, x, scales);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Products(Vector256<short> wl, Vector256<short> wh, Vector256<sbyte> x, Vector256<short> scales)
    {
        var (xl, xh) = Vector256.Widen(x);
        var (a, b) = Vector256.Widen(wl * xl);
        var (c, d) = Vector256.Widen(wh * xh);
        return (a + b) * Vector256.Create((int)scales.GetElement(0)) + (c + d) * Vector256.Create((int)scales.GetElement(8));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int MinSum(short* mins, short* sums)
    {
        var (ml, mh) = Vector256.Widen(Vector256.Load(mins));
        var (sl, sh) = Vector256.Widen(Vector256.Load(sums));
        return Vector256.Sum(ml * sl + mh * sh);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> MinProducts(Vector256<short> mins, short* sums)
    {
        var (ml, mh) = Vector256.Widen(mins);
        var (sl, sh) = Vector256.Widen(Vector256.Load(sums));
        return ml * sl + mh * sh;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Sum4(Vector256<int> a, Vector256<int> b, Vector256<int> c, Vector256<int> d) =>
        Vector128.Create(Vector256.Sum(a), Vector256.Sum(b), Vector256.Sum(c), Vector256.Sum(d));
}

/// <summary>
/// K-quant weight rows (Q2_K-Q6_K, as stored in the file) times Q8_K activation rows. A tile is a
/// range of rows × a range of tokens; each weight super-block is unpacked once per 4 tokens. All
/// tiers compute the same exact integers per super-block and combine them with the same float
/// operations in the same order, so every tier equals the scalar twin bit for bit. Where the CPU has
/// AVX-VNNI (at the AVX-VNNI and AVX-512 tiers) the unsigned K-quants run <see cref="VnniKDot.Pair"/>:
/// <c>vpdpbusd</c> per chunk, two chunks packed to 16 bits, one <c>vpdpwssd</c> by the per-16 scales.
/// .NET 10 has no 512-bit <c>vpdpbusd</c> (no AVX512-VNNI class; <c>Avx10v1</c> is not reported by AMD
/// CPUs), so the VNNI forms are 256-bit.
/// </summary>
internal static unsafe class KQuantKernels
{
    public static bool Handles(GgmlType type) => type is GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K or GgmlType.IQ4_XS;

    /// <summary>The kernel <paramref name="type"/> runs on at <paramref name="isa"/>, for <c>bulwark info</c>.</summary>
    public static string Describe(InstructionSet isa) => isa switch
    {
        InstructionSet.Scalar => "scalar int8",
        InstructionSet.Portable => "portable Vector256 int8",
        InstructionSet.AvxVnni when AvxVnni.IsSupported => "AVX-VNNI vpdpbusd/vpdpwssd int8 (256-bit)",
        InstructionSet.Avx512 when AvxVnni.IsSupported => "AVX-512 vpmaddubsw tiles, AVX-VNNI vpdpbusd/vpdpwssd decode",
        _ => "AVX2 vpmaddubsw/vpmaddwd int8",
    };

    public static void Tile(GgmlType type, InstructionSet isa, byte* w, long rowBytes, int r0, int r1,
        Q8KRows x, int t0, int t1, float* y, int yStride)
    {
        switch (type)
        {
            case GgmlType.Q4_K: Tile<Q4KBlock>(isa, w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            case GgmlType.Q6_K: Tile<Q6KBlock>(isa, w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            case GgmlType.Q5_K: Tile<Q5KBlock>(isa, w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            case GgmlType.Q3_K: Tile<Q3KBlock>(isa, w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            case GgmlType.Q2_K: Tile<Q2KBlock>(isa, w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            case GgmlType.IQ4_XS: Tile<IQ4XSBlock>(isa, w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            default: throw new NotSupportedException($"no K-quant kernel for {type}");
        }
    }

    private static void Tile<TB>(InstructionSet isa, byte* w, long rowBytes, int r0, int r1,
        Q8KRows x, int t0, int t1, float* y, int yStride) where TB : IKQuantBlock
    {
        switch (isa)
        {
            case InstructionSet.Scalar: TileScalar<TB>(w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            case InstructionSet.Portable: Tile256<TB, PortableKDot, Narrow>(w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            // 512-bit tiles only where AVX-VNNI is also present (Zen 5, where they were measured to win): a CPU with
            // AVX-512 but no AVX-VNNI (Zen 4) splits 512-bit operations and keeps the 256-bit kernels it had.
            case InstructionSet.Avx512 when AvxVnni.IsSupported:
                Tile256<TB, VnniKDot, Wide>(w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            case InstructionSet.AvxVnni when AvxVnni.IsSupported:
                Tile256<TB, VnniKDot, Narrow>(w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            case InstructionSet.Avx2 or InstructionSet.AvxVnni or InstructionSet.Avx512:
                Tile256<TB, Avx2KDot, Narrow>(w, rowBytes, r0, r1, x, t0, t1, y, yStride); break;
            default: throw new ArgumentOutOfRangeException(nameof(isa), isa, "unknown instruction set");
        }
    }

    /// <summary>One super-block's contribution from its exact integer sums: the float step every tier shares.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Combine(float d, float dmin, float xd, int sumi, int summ) => d * xd * sumi - dmin * xd * summ;

    /// <summary>The scalar twin: the same integers summed one product at a time.</summary>
    private static void TileScalar<TB>(byte* w, long rowBytes, int r0, int r1, Q8KRows x, int t0, int t1, float* y, int yStride)
        where TB : IKQuantBlock
    {
        var scales = stackalloc short[16];
        var mins = stackalloc short[16];
        var blocks = x.Blocks;
        for (var r = r0; r < r1; r++)
        for (var t = t0; t < t1; t++)
        {
            var sum = 0f;
            for (var b = 0; b < blocks; b++)
            {
                var block = w + r * rowBytes + b * TB.Bytes;
                TB.Scales(block, scales, mins, out var d, out var dmin);
                var index = (long)t * blocks + b;
                var xq = x.Quants + index * Q8KActivations.Block;
                var xs = x.Sums + index * Q8KActivations.Groups;
                int sumi = 0, summ = 0;
                for (var g = 0; g < 16; g++)
                {
                    var s = 0;
                    for (var i = g * 16; i < g * 16 + 16; i++) s += TB.Quant(block, i) * xq[i];
                    sumi += scales[g] * s;
                    summ += mins[g] * xs[g];
                }
                sum += Combine(d, dmin, x.Scales[index], sumi, summ);
            }
            y[(long)t * yStride + r] = sum;
        }
    }

    /// <summary>
    /// Tiles of 8 (then 4) tokens one row at a time, each super-block unpacked once for all of them, the
    /// per-block reductions and float steps done four dot products at a time (<see cref="IKQuantDot.Sum4"/>);
    /// the last tokens (fewer than 4) one row and one token at a time. <typeparamref name="TW"/> <see cref="Wide"/>
    /// (the AVX-512 tier) runs the token tiles two chunks per 512-bit instruction; decode stays on <typeparamref name="TD"/>.
    /// </summary>
    private static void Tile256<TB, TD, TW>(byte* w, long rowBytes, int r0, int r1, Q8KRows x, int t0, int t1, float* y, int yStride)
        where TB : IKQuantBlock where TD : IKQuantDot where TW : struct, ITileWidth
    {
        var tiled = t0 + (t1 - t0) / 4 * 4;
        for (var r = r0; r < r1; r++)
        {
            var row = w + r * rowBytes;
            var t = t0;
            for (; t + 8 <= tiled; t += 8) RowTokens<TB, TD, Eight, TW>(row, x, t, y + (long)t * yStride + r, yStride);
            if (t < tiled) RowTokens<TB, TD, Four, TW>(row, x, t, y + (long)t * yStride + r, yStride);
        }
        // Fewer than 4 tokens (decode): one row at a time. Walking 4 rows at once (four streams of 144–210-byte
        // blocks) measured 3.0 GB/s for Q6_K on a matrix larger than the caches against 9.8 row by row
        // (`bench/run kernels --threads 1 --cpu-time --types q6_k --rows 32768 --cols 2048 --tokens 8`).
        for (var t = tiled; t < t1; t++)
            for (var r = r0; r < r1; r++) y[(long)t * yStride + r] = Dot1<TB, TD>(w + r * rowBytes, x, t);
    }

    private interface ITokens
    {
        static abstract int Count { get; }
    }

    private struct Four : ITokens { public static int Count => 4; }
    private struct Eight : ITokens { public static int Count => 8; }

    /// <summary>Whether the tiles multiply two chunks per 512-bit instruction (<see cref="Wide"/>) or use <c>TD</c>'s 256-bit forms.</summary>
    private interface ITileWidth
    {
        static abstract bool Is512 { get; }
    }

    private struct Narrow : ITileWidth { public static bool Is512 => false; }
    private struct Wide : ITileWidth { public static bool Is512 => true; }

    /// <summary><see cref="Combine"/> for four (row, token) pairs at once, lane by lane the same float operations in the same order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Combine4(Vector128<float> d, Vector128<float> dmin, Vector128<float> xd, Vector128<int> sumi, Vector128<int> summ) =>
        d * xd * Vector128.ConvertToSingle(sumi) - dmin * xd * Vector128.ConvertToSingle(summ);

    /// <summary>Four tokens' activation scales for block <paramref name="index"/> (token-major, <paramref name="blocks"/> apart).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> TokenScales(float* scales, long index, int blocks) =>
        Vector128.Create(scales[index], scales[index + blocks], scales[index + 2 * blocks], scales[index + 3 * blocks]);

    /// <summary>
    /// One weight row against <typeparamref name="TN"/> (4 or 8) tokens: each chunk of quants and its scales
    /// are unpacked once for all of them; the per-token integer sums and minimum sums are reduced four at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowTokens<TB, TD, TN, TW>(byte* row, Q8KRows x, int t, float* y, int yStride)
        where TB : IKQuantBlock where TD : IKQuantDot where TN : struct, ITokens where TW : struct, ITileWidth
    {
        var scales = stackalloc short[16];
        var mins = stackalloc short[16];
        var blocks = x.Blocks;
        var eight = TN.Count == 8;
        long tq = (long)blocks * Q8KActivations.Block;
        long ts = (long)blocks * Q8KActivations.Groups;
        Vector128<float> f0 = default, f1 = default;
        for (var b = 0; b < blocks; b++)
        {
            var block = row + b * TB.Bytes;
            TB.Scales(block, scales, mins, out var d, out var dmin);
            var index = (long)t * blocks + b;
            var q0 = x.Quants + index * Q8KActivations.Block;
            Vector256<int> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            if (TW.Is512 && !TB.Signed)
            {
                Vector512<int> z0 = default, z1 = default, z2 = default, z3 = default, z4 = default, z5 = default, z6 = default, z7 = default;
                for (var c = 0; c < 8; c += 2)
                {
                    var wq = Vector512.Create(TB.Chunk(block, c), TB.Chunk(block, c + 1));
                    var sc = Vector512.Create(TB.ChunkScales(scales, c), TB.ChunkScales(scales, c + 1));
                    var q = q0 + c * 32;
                    z0 += Wide512(wq, Vector512.Load(q), sc);
                    z1 += Wide512(wq, Vector512.Load(q + tq), sc);
                    z2 += Wide512(wq, Vector512.Load(q + 2 * tq), sc);
                    z3 += Wide512(wq, Vector512.Load(q + 3 * tq), sc);
                    if (eight)
                    {
                        z4 += Wide512(wq, Vector512.Load(q + 4 * tq), sc);
                        z5 += Wide512(wq, Vector512.Load(q + 5 * tq), sc);
                        z6 += Wide512(wq, Vector512.Load(q + 6 * tq), sc);
                        z7 += Wide512(wq, Vector512.Load(q + 7 * tq), sc);
                    }
                }
                a0 = z0.GetLower() + z0.GetUpper();
                a1 = z1.GetLower() + z1.GetUpper();
                a2 = z2.GetLower() + z2.GetUpper();
                a3 = z3.GetLower() + z3.GetUpper();
                if (eight)
                {
                    a4 = z4.GetLower() + z4.GetUpper();
                    a5 = z5.GetLower() + z5.GetUpper();
                    a6 = z6.GetLower() + z6.GetUpper();
                    a7 = z7.GetLower() + z7.GetUpper();
                }
            }
            else if (typeof(TD) == typeof(VnniKDot) && !TB.Signed)
            {
                for (var c = 0; c < 8; c += 2)
                {
                    var wa = TB.Chunk(block, c);
                    var wb = TB.Chunk(block, c + 1);
                    var sc = VnniKDot.PairScales(scales, c);
                    var q = q0 + c * 32;
                    a0 = VnniKDot.Pair(a0, wa, Vector256.Load(q), wb, Vector256.Load(q + 32), sc);
                    a1 = VnniKDot.Pair(a1, wa, Vector256.Load(q + tq), wb, Vector256.Load(q + tq + 32), sc);
                    a2 = VnniKDot.Pair(a2, wa, Vector256.Load(q + 2 * tq), wb, Vector256.Load(q + 2 * tq + 32), sc);
                    a3 = VnniKDot.Pair(a3, wa, Vector256.Load(q + 3 * tq), wb, Vector256.Load(q + 3 * tq + 32), sc);
                    if (eight)
                    {
                        a4 = VnniKDot.Pair(a4, wa, Vector256.Load(q + 4 * tq), wb, Vector256.Load(q + 4 * tq + 32), sc);
                        a5 = VnniKDot.Pair(a5, wa, Vector256.Load(q + 5 * tq), wb, Vector256.Load(q + 5 * tq + 32), sc);
                        a6 = VnniKDot.Pair(a6, wa, Vector256.Load(q + 6 * tq), wb, Vector256.Load(q + 6 * tq + 32), sc);
                        a7 = VnniKDot.Pair(a7, wa, Vector256.Load(q + 7 * tq), wb, Vector256.Load(q + 7 * tq + 32), sc);
                    }
                }
            }
            else
            for (var c = 0; c < 8; c++)
            {
                var wq = TB.Chunk(block, c);
                var sc = TB.ChunkScales(scales, c);
                var q = q0 + c * 32;
                a0 += ChunkDot<TB, TD>(wq, Vector256.Load(q), sc);
                a1 += ChunkDot<TB, TD>(wq, Vector256.Load(q + tq), sc);
                a2 += ChunkDot<TB, TD>(wq, Vector256.Load(q + 2 * tq), sc);
                a3 += ChunkDot<TB, TD>(wq, Vector256.Load(q + 3 * tq), sc);
                if (eight)
                {
                    a4 += ChunkDot<TB, TD>(wq, Vector256.Load(q + 4 * tq), sc);
                    a5 += ChunkDot<TB, TD>(wq, Vector256.Load(q + 5 * tq), sc);
                    a6 += ChunkDot<TB, TD>(wq, Vector256.Load(q + 6 * tq), sc);
                    a7 += ChunkDot<TB, TD>(wq, Vector256.Load(q + 7 * tq), sc);
                }
            }
            var m = Vector256.Load(mins);
            var s = x.Sums + index * Q8KActivations.Groups;
            var vd = Vector128.Create(d);
            var vm = Vector128.Create(dmin);
            f0 += Combine4(vd, vm, TokenScales(x.Scales, index, blocks), TD.Sum4(a0, a1, a2, a3),
                TD.Sum4(TD.MinProducts(m, s), TD.MinProducts(m, s + ts), TD.MinProducts(m, s + 2 * ts), TD.MinProducts(m, s + 3 * ts)));
            if (eight)
                f1 += Combine4(vd, vm, TokenScales(x.Scales, index + 4 * blocks, blocks), TD.Sum4(a4, a5, a6, a7),
                    TD.Sum4(TD.MinProducts(m, s + 4 * ts), TD.MinProducts(m, s + 5 * ts), TD.MinProducts(m, s + 6 * ts), TD.MinProducts(m, s + 7 * ts)));
        }
        y[0] = f0.GetElement(0);
        y[yStride] = f0.GetElement(1);
        y[2L * yStride] = f0.GetElement(2);
        y[3L * yStride] = f0.GetElement(3);
        if (!eight) return;
        y[4L * yStride] = f1.GetElement(0);
        y[5L * yStride] = f1.GetElement(1);
        y[6L * yStride] = f1.GetElement(2);
        y[7L * yStride] = f1.GetElement(3);
    }

    /// <summary>
    /// Two chunks of unsigned quants times their 64 activations and per-16 scales on 512 bits: <c>vpmaddubsw</c>
    /// (pairs at most 2·63·127, never saturating) then <c>vpmaddwd</c>; the same exact integers as two 256-bit chunk dots.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Wide512(Vector512<byte> w, Vector512<sbyte> x, Vector512<short> scales) =>
        Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(w, x), scales);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> ChunkDot<TB, TD>(Vector256<byte> w, Vector256<sbyte> x, Vector256<short> scales)
        where TB : IKQuantBlock where TD : IKQuantDot =>
        TB.Signed ? TD.DotSigned(w.AsSByte(), x, scales) : TD.Dot(w, x, scales);

    /// <summary>
    /// One row × one token (decode). Super-blocks go four at a time: their integer sums reduced together
    /// (<see cref="IKQuantDot.Sum4"/>) and combined by <see cref="Combine4"/>, then added to the row's sum one
    /// block after another, as the scalar twin does, so the bits are the twin's; two horizontal sums per block
    /// were a quarter of the work here.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot1<TB, TD>(byte* row, Q8KRows x, int t) where TB : IKQuantBlock where TD : IKQuantDot
    {
        var scales = stackalloc short[16];
        var mins = stackalloc short[16];
        var blocks = x.Blocks;
        var index = (long)t * blocks;
        var xq = x.Quants + index * Q8KActivations.Block;
        var xs = x.Sums + index * Q8KActivations.Groups;
        var xd = x.Scales + index;
        var halves = HalfTable.Pointer;
        var sum = 0f;
        var b = 0;
        for (; b + 4 <= blocks; b += 4)
        {
            var block = row + b * TB.Bytes;
            var q = xq + b * Q8KActivations.Block;
            var s = xs + b * Q8KActivations.Groups;
            var i0 = KQuantBlockSums.Of<TB, TD>(halves, block, q, s, scales, mins, out var m0, out var d0, out var n0);
            var i1 = KQuantBlockSums.Of<TB, TD>(halves, block + TB.Bytes, q + Q8KActivations.Block, s + Q8KActivations.Groups, scales, mins, out var m1, out var d1, out var n1);
            var i2 = KQuantBlockSums.Of<TB, TD>(halves, block + 2 * TB.Bytes, q + 2 * Q8KActivations.Block, s + 2 * Q8KActivations.Groups, scales, mins, out var m2, out var d2, out var n2);
            var i3 = KQuantBlockSums.Of<TB, TD>(halves, block + 3 * TB.Bytes, q + 3 * Q8KActivations.Block, s + 3 * Q8KActivations.Groups, scales, mins, out var m3, out var d3, out var n3);
            var f = Combine4(Vector128.Create(d0, d1, d2, d3), Vector128.Create(n0, n1, n2, n3), Vector128.Load(xd + b),
                TD.Sum4(i0, i1, i2, i3), TD.Sum4(m0, m1, m2, m3));
            sum += f.GetElement(0);
            sum += f.GetElement(1);
            sum += f.GetElement(2);
            sum += f.GetElement(3);
        }
        for (; b < blocks; b++)
        {
            var sumi = KQuantBlockSums.Of<TB, TD>(halves, row + b * TB.Bytes, xq + b * Q8KActivations.Block, xs + b * Q8KActivations.Groups,
                scales, mins, out var summ, out var d, out var dmin);
            sum += Combine(d, dmin, xd[b], Vector256.Sum(sumi), Vector256.Sum(summ));
        }
        return sum;
    }
}
