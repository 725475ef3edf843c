using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// One weight super-block against one token's Q8_K block: lanes whose total is Σ scale·q·x and lanes whose
/// total is Σ min·Σx, and the block's d and dmin: the integers <see cref="KQuantKernels"/>' decode combines.
/// Q4_K, Q5_K and Q6_K (what Q4_K_M, Q5_K_M and Q6_K files hold) have AVX2 forms written out whole, as
/// ggml's vec_dot_q*_K_q8_K: each 32 bytes of quants loaded once for the chunks they hold, and the scales
/// taken from a register with one byte shuffle per chunk rather than stored and re-broadcast. The lanes
/// may split the sums differently from the generic form; the totals are the same exact integers. With
/// <see cref="VnniKDot"/> the same forms run two chunks per <see cref="VnniKDot.Pair"/> (AVX-VNNI).
/// </summary>
internal static unsafe class KQuantBlockSums
{
    /// <param name="halves">
    /// <see cref="HalfTable.Pointer"/>, read once by the caller: the kernels are jitted fully optimized before
    /// the table's class is initialized, so each <see cref="HalfTable.ToSingle(byte*)"/> inlined here would
    /// call the runtime's class-initialization check (measured: one helper call per block).
    /// </param>
    /// <param name="scales">16 shorts of scratch for the generic form.</param>
    /// <param name="mins">16 shorts of scratch for the generic form.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Of<TB, TD>(float* halves, byte* block, sbyte* xq, short* xs, short* scales, short* mins,
        out Vector256<int> minProducts, out float d, out float dmin) where TB : IKQuantBlock where TD : IKQuantDot
    {
        if (typeof(TD) == typeof(Avx2KDot) || typeof(TD) == typeof(VnniKDot))
        {
            var vnni = typeof(TD) == typeof(VnniKDot);
            if (typeof(TB) == typeof(Q4KBlock)) return Q4K(halves, block, block + 16, default, false, vnni, xq, xs, out minProducts, out d, out dmin);
            if (typeof(TB) == typeof(Q5KBlock)) return Q4K(halves, block, block + 48, Vector256.Load(block + 16), true, vnni, xq, xs, out minProducts, out d, out dmin);
            if (typeof(TB) == typeof(Q6KBlock)) return Q6K(halves, block, vnni, xq, xs, out minProducts, out d, out dmin);
        }
        TB.Scales(block, scales, mins, out d, out dmin);
        var acc = Vector256<int>.Zero;
        for (var c = 0; c < 8; c++)
            acc += KQuantKernels.ChunkDot<TB, TD>(TB.Chunk(block, c), Vector256.Load(xq + c * 32), TB.ChunkScales(scales, c));
        minProducts = TD.MinProducts(Vector256.Load(mins), xs);
        return acc;
    }

    /// <summary>A vpshufb mask that repeats short <paramref name="i"/> of each 128-bit half across it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Repeat(int i) => Vector256.Create((short)(((2 * i + 1) << 8) | (2 * i))).AsByte();

    /// <summary>
    /// Q4_K (and Q5_K with <paramref name="fifth"/>: bit c of high-bit byte l is value 32c+l's fifth bit): each
    /// 32 bytes of nibbles are chunks 2j (low) and 2j+1 (high), one scale per chunk; with <paramref name="vnni"/>
    /// the two chunks go through <see cref="VnniKDot.Pair"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q4K(float* halves, byte* block, byte* quants, Vector256<byte> high, bool fifth, bool vnni, sbyte* xq, short* xs,
        out Vector256<int> minProducts, out float d, out float dmin)
    {
        var packed = KQuantScales.Packed(block);
        var s8 = Vector128.WidenLower(packed).AsInt16();
        var sc = Vector256.Create(s8, s8).AsByte();
        minProducts = Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(Ssse3.Shuffle(packed, KQuantScales.MinsPer16)), Vector256.Load(xs));
        d = halves[*(ushort*)block];
        dmin = halves[*(ushort*)(block + 2)];
        if (vnni)
        {
            var v = Q4KPair(Vector256<int>.Zero, quants, high, fifth, true, xq, sc, 0);
            v = Q4KPair(v, quants, high, fifth, true, xq, sc, 1);
            v = Q4KPair(v, quants, high, fifth, true, xq, sc, 2);
            return Q4KPair(v, quants, high, fifth, true, xq, sc, 3);
        }
        var acc = Q4KPair(default, quants, high, fifth, false, xq, sc, 0);
        acc += Q4KPair(default, quants, high, fifth, false, xq, sc, 1);
        acc += Q4KPair(default, quants, high, fifth, false, xq, sc, 2);
        return acc + Q4KPair(default, quants, high, fifth, false, xq, sc, 3);
    }

    /// <summary>
    /// Chunks 2j and 2j+1: their scaled products (AVX2), or <paramref name="acc"/> plus them (<paramref name="vnni"/>:
    /// one <see cref="VnniKDot.Pair"/>, the scales of the two chunks in shorts 0-3 and 4-7 of each half).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q4KPair(Vector256<int> acc, byte* quants, Vector256<byte> high, bool fifth, bool vnni, sbyte* xq, Vector256<byte> sc, int j)
    {
        var nibble = Vector256.Create((byte)0x0F);
        var raw = Vector256.Load(quants + 32 * j);
        var low = raw & nibble;
        var up = Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & nibble;
        if (fifth)
        {
            // Bits 2j and 2j+1 of each byte to bit 4 (16-bit shifts: the mask keeps only bits of the same byte).
            var bit = Vector256.Create((byte)0x10);
            var h = Vector256.ShiftRightLogical(high.AsUInt16(), 2 * j);
            low |= Vector256.ShiftLeft(h, 4).AsByte() & bit;
            up |= Vector256.ShiftLeft(h, 3).AsByte() & bit;
        }
        var x0 = Vector256.Load(xq + 64 * j);
        var x1 = Vector256.Load(xq + 64 * j + 32);
        if (vnni)
        {
            var a = (byte)(4 * j);
            var pair = Vector256.Create(a, (byte)(a + 1), a, (byte)(a + 1), a, (byte)(a + 1), a, (byte)(a + 1),
                (byte)(a + 2), (byte)(a + 3), (byte)(a + 2), (byte)(a + 3), (byte)(a + 2), (byte)(a + 3), (byte)(a + 2), (byte)(a + 3),
                a, (byte)(a + 1), a, (byte)(a + 1), a, (byte)(a + 1), a, (byte)(a + 1),
                (byte)(a + 2), (byte)(a + 3), (byte)(a + 2), (byte)(a + 3), (byte)(a + 2), (byte)(a + 3), (byte)(a + 2), (byte)(a + 3));
            return VnniKDot.Pair(acc, low, x0, up, x1, Avx2.Shuffle(sc, pair).AsInt16());
        }
        return Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(low, x0), Avx2.Shuffle(sc, Repeat(2 * j)).AsInt16())
            + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(up, x1), Avx2.Shuffle(sc, Repeat(2 * j + 1)).AsInt16());
    }

    /// <summary>
    /// Q6_K: each 128-value half h reads 64 bytes of low nibbles and 32 of high bit pairs once for its four
    /// chunks; chunk c's two per-16 scales are bytes 2c and 2c+1 of the 16 signed scale bytes, shuffled and widened.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q6K(float* halves, byte* block, bool vnni, sbyte* xq, short* xs, out Vector256<int> minProducts, out float d, out float dmin)
    {
        var scales = Vector128.Load(block + 192);
        minProducts = Avx2.MultiplyAddAdjacent(Vector256.ShiftLeft(Avx2.ConvertToVector256Int16(scales.AsSByte()), 5), Vector256.Load(xs));
        d = dmin = halves[*(ushort*)(block + 208)];
        if (vnni) return Q6KHalf(Q6KHalf(Vector256<int>.Zero, block, scales, true, xq, 0), block, scales, true, xq, 1);
        return Q6KHalf(default, block, scales, false, xq, 0) + Q6KHalf(default, block, scales, false, xq, 1);
    }

    /// <summary>Half h's four chunks: their scaled products (AVX2), or <paramref name="acc"/> plus them through two <see cref="VnniKDot.Pair"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q6KHalf(Vector256<int> acc, byte* block, Vector128<byte> scales, bool vnni, sbyte* xq, int h)
    {
        var nibble = Vector256.Create((byte)0x0F);
        var pair = Vector256.Create((byte)0x30);
        var q1 = Vector256.Load(block + 64 * h);
        var q2 = Vector256.Load(block + 64 * h + 32);
        var qh = Vector256.Load(block + 128 + 32 * h).AsUInt16();
        var c0 = (q1 & nibble) | (Vector256.ShiftLeft(qh, 4).AsByte() & pair);
        var c1 = (q2 & nibble) | (Vector256.ShiftLeft(qh, 2).AsByte() & pair);
        var c2 = (Vector256.ShiftRightLogical(q1.AsUInt16(), 4).AsByte() & nibble) | (qh.AsByte() & pair);
        var c3 = (Vector256.ShiftRightLogical(q2.AsUInt16(), 4).AsByte() & nibble) | (Vector256.ShiftRightLogical(qh, 2).AsByte() & pair);
        var x = xq + 128 * h;
        if (vnni)
        {
            acc = VnniKDot.Pair(acc, c0, Vector256.Load(x), c1, Vector256.Load(x + 32), Q6KPairScales(scales, 4 * h));
            return VnniKDot.Pair(acc, c2, Vector256.Load(x + 64), c3, Vector256.Load(x + 96), Q6KPairScales(scales, 4 * h + 2));
        }
        return Q6KChunk(c0, x, scales, 4 * h) + Q6KChunk(c1, x + 32, scales, 4 * h + 1)
            + Q6KChunk(c2, x + 64, scales, 4 * h + 2) + Q6KChunk(c3, x + 96, scales, 4 * h + 3);
    }

    /// <summary>
    /// <see cref="VnniKDot.Pair"/>'s scales for chunks c and c+1 from the 16 signed scale bytes: bytes 2c and
    /// 2c+2 (values 0-15 of each) four times each in the low half, 2c+1 and 2c+3 in the high half, sign-extended.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Q6KPairScales(Vector128<byte> scales, int c)
    {
        const uint ones = 0x01010101;
        var pick = Vector128.Create(ones * (uint)(2 * c), ones * (uint)(2 * c + 2), ones * (uint)(2 * c + 1), ones * (uint)(2 * c + 3)).AsByte();
        return Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scales, pick).AsSByte());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q6KChunk(Vector256<byte> q, sbyte* x, Vector128<byte> scales, int c)
    {
        const ulong ones = 0x0101010101010101;
        var pick = Vector128.Create(ones * (ulong)(2 * c), ones * (ulong)(2 * c + 1)).AsByte();
        var sc = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scales, pick).AsSByte());
        return Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, Vector256.Load(x)), sc);
    }
}
