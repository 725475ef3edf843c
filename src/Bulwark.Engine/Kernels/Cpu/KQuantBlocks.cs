using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Bulwark.Engine.Kernels.Reference;

namespace Bulwark.Engine.Kernels.Cpu;

// How each K-quant's super-block reads as IKQuantBlock's unsigned quants, scales and minimums. The
// layouts are documented on the reference dequantizers (Kernels/Reference/Dequantize*.cs); the tests
// hold each reader to them through the scalar kernel.

/// <summary>Q4_K: value 32c+l is the low (c even) or high (c odd) nibble of byte 32(c/2)+l; per-32 6-bit scale and min.</summary>
internal unsafe struct Q4KBlock : IKQuantBlock
{
    public static int Bytes => 144;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Scales(byte* block, short* scales, short* mins, out float d, out float dmin) =>
        KQuantScales.FromPacked(block, scales, mins, out d, out dmin);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Chunk(byte* block, int c) => KQuantScales.Nibbles(block + 16, c);

    /// <summary>One scale per 32 values: a single broadcast.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> ChunkScales(short* scales, int c) => Vector256.Create(scales[2 * c]);

    public static int Quant(byte* block, int i)
    {
        int c = i >> 5, l = i & 31;
        var b = block[16 + (c >> 1) * 32 + l];
        return (c & 1) != 0 ? b >> 4 : b & 0xF;
    }
}

/// <summary>Q5_K: Q4_K's nibbles (from byte 48) with bit c of byte l of the 32 high-bit bytes (from byte 16) as value 32c+l's fifth bit.</summary>
internal unsafe struct Q5KBlock : IKQuantBlock
{
    public static int Bytes => 176;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Scales(byte* block, short* scales, short* mins, out float d, out float dmin) => Q4KBlock.Scales(block, scales, mins, out d, out dmin);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> ChunkScales(short* scales, int c) => Q4KBlock.ChunkScales(scales, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Chunk(byte* block, int c)
    {
        var high = KQuantScales.Bits(Vector256.Load(block + 16), c, 1);
        return KQuantScales.Nibbles(block + 48, c) | Vector256.ShiftLeft(high.AsUInt16(), 4).AsByte();
    }

    public static int Quant(byte* block, int i)
    {
        int c = i >> 5, l = i & 31;
        var b = block[48 + (c >> 1) * 32 + l];
        return ((c & 1) != 0 ? b >> 4 : b & 0xF) | (((block[16 + l] >> c) & 1) << 4);
    }
}

/// <summary>Q6_K: q + 32 as stored (0-63), signed 8-bit scale per 16, the −32 offset as a minimum of 32·scale with dmin = d.</summary>
internal unsafe struct Q6KBlock : IKQuantBlock
{
    public static int Bytes => 210;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Scales(byte* block, short* scales, short* mins, out float d, out float dmin)
    {
        var s = Vector128.WidenLower(Vector128.Load((sbyte*)block + 192));
        var s2 = Vector128.WidenUpper(Vector128.Load((sbyte*)block + 192));
        s.Store(scales);
        s2.Store(scales + 8);
        (s * Vector128.Create((short)32)).Store(mins);
        (s2 * Vector128.Create((short)32)).Store(mins + 8);
        d = dmin = HalfTable.ToSingle(block + 208);
    }

    /// <summary>Half h = c/4 of the block, part k = c%4: nibbles of ql[64h + 32(k&amp;1)..] (high ones for k ≥ 2), bits 2k of qh[128 + 32h..].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Chunk(byte* block, int c)
    {
        int h = c >> 2, k = c & 3;
        var low = Vector256.Load(block + h * 64 + (k & 1) * 32);
        if (k >= 2) low = Vector256.ShiftRightLogical(low.AsUInt16(), 4).AsByte();
        var high = KQuantScales.Bits(Vector256.Load(block + 128 + h * 32), 2 * k, 3);
        return (low & Vector256.Create((byte)0x0F)) | Vector256.ShiftLeft(high.AsUInt16(), 4).AsByte();
    }

    public static int Quant(byte* block, int i)
    {
        int c = i >> 5, l = i & 31, h = c >> 2, k = c & 3;
        var b = block[h * 64 + (k & 1) * 32 + l];
        var low = k >= 2 ? b >> 4 : b & 0xF;
        return low | (((block[128 + h * 32 + l] >> (2 * k)) & 3) << 4);
    }
}

/// <summary>Q3_K: 2 low bits plus 4 × the high bit (0-7, the stored q + 4); scale − 32 per 16, the −4 offset as a minimum of 4·scale with dmin = d.</summary>
internal unsafe struct Q3KBlock : IKQuantBlock
{
    public static int Bytes => 110;

    public static void Scales(byte* block, short* scales, short* mins, out float d, out float dmin)
    {
        Span<int> packed = stackalloc int[16];
        Dequantize.Q3KScales(new ReadOnlySpan<byte>(block + 96, 12), packed);
        for (var g = 0; g < 16; g++)
        {
            scales[g] = (short)(packed[g] - 32);
            mins[g] = (short)(4 * (packed[g] - 32));
        }
        d = dmin = HalfTable.ToSingle(block + 108);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Chunk(byte* block, int c)
    {
        var low = KQuantScales.Bits(Vector256.Load(block + 32 + (c >> 2) * 32), 2 * (c & 3), 3);
        var high = KQuantScales.Bits(Vector256.Load(block), c, 1);
        return low | Vector256.ShiftLeft(high.AsUInt16(), 2).AsByte();
    }

    public static int Quant(byte* block, int i)
    {
        int c = i >> 5, l = i & 31;
        return ((block[32 + (c >> 2) * 32 + l] >> (2 * (c & 3))) & 3) | (((block[l] >> c) & 1) << 2);
    }
}

/// <summary>Q2_K: 2-bit quants laid out as Q3_K's low bits (from byte 16); 4-bit scale and min per 16 in bytes 0-15.</summary>
internal unsafe struct Q2KBlock : IKQuantBlock
{
    public static int Bytes => 84;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Scales(byte* block, short* scales, short* mins, out float d, out float dmin)
    {
        var packed = Vector128.Load(block);
        var (low, high) = Vector128.Widen(packed & Vector128.Create((byte)0x0F));
        low.AsInt16().Store(scales);
        high.AsInt16().Store(scales + 8);
        var (mlow, mhigh) = Vector128.Widen(Vector128.ShiftRightLogical(packed, 4));
        mlow.AsInt16().Store(mins);
        mhigh.AsInt16().Store(mins + 8);
        d = HalfTable.ToSingle(block + 80);
        dmin = HalfTable.ToSingle(block + 82);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Chunk(byte* block, int c) => KQuantScales.Bits(Vector256.Load(block + 16 + (c >> 2) * 32), 2 * (c & 3), 3);

    public static int Quant(byte* block, int i)
    {
        int c = i >> 5, l = i & 31;
        return (block[16 + (c >> 2) * 32 + l] >> (2 * (c & 3))) & 3;
    }
}

/// <summary>
/// IQ4_XS: per 32 values a 6-bit scale − 32 and 16 bytes of nibbles indexing the IQ4_NL levels (signed,
/// −127..113: <see cref="Signed"/>); no minimum. The levels are ggml's, so the sums are exact as for the rest.
/// </summary>
internal unsafe struct IQ4XSBlock : IKQuantBlock
{
    public static int Bytes => 136;

    public static bool Signed => true;

    public static void Scales(byte* block, short* scales, short* mins, out float d, out float dmin)
    {
        var span = new ReadOnlySpan<byte>(block, 136);
        for (var ib = 0; ib < 8; ib++)
        {
            scales[2 * ib] = scales[2 * ib + 1] = (short)(Dequantize.IQ4XSScale(span, ib) - 32);
            mins[2 * ib] = mins[2 * ib + 1] = 0;
        }
        d = HalfTable.ToSingle(block);
        dmin = 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Chunk(byte* block, int c)
    {
        var (low, high) = Q4_0Block.Nibbles(block + 8 + c * 16);
        return Vector256.Create(IQ4_NLBlock.Levels(low), IQ4_NLBlock.Levels(high)).AsByte();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> ChunkScales(short* scales, int c) => Q4KBlock.ChunkScales(scales, c);

    public static int Quant(byte* block, int i)
    {
        int c = i >> 5, l = i & 31;
        var b = block[8 + c * 16 + (l & 15)];
        return Dequantize.IQ4Levels[l < 16 ? b & 0xF : b >> 4];
    }
}

/// <summary>Pieces the K-quant block readers share.</summary>
internal static unsafe class KQuantScales
{
    /// <summary>
    /// Q4_K/Q5_K: f16 d and dmin at bytes 0 and 2; eight 6-bit (scale, min) pairs in bytes 4-15, each
    /// covering 32 values (get_scale_min_k4), written once per 16. The 12 bytes are regrouped as three
    /// 32-bit words (as ggml's AVX2 path does) into 8 scale bytes then 8 min bytes, then spread to 16
    /// values each with one byte shuffle: a handful of instructions instead of 8 rounds of byte picking.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void FromPacked(byte* block, short* scales, short* mins, out float d, out float dmin)
    {
        var packed = Packed(block);
        var s = Vector128.Shuffle(packed, Vector128.Create((byte)0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7));
        var m = Vector128.Shuffle(packed, MinsPer16);
        Vector128.WidenLower(s).AsInt16().Store(scales);
        Vector128.WidenUpper(s).AsInt16().Store(scales + 8);
        Vector128.WidenLower(m).AsInt16().Store(mins);
        Vector128.WidenUpper(m).AsInt16().Store(mins + 8);
        d = HalfTable.ToSingle(block);
        dmin = HalfTable.ToSingle(block + 2);
    }

    /// <summary>
    /// Q4_K/Q5_K's eight 6-bit scales (bytes 0-7, one per 32 values) and eight minimums (bytes 8-15) from
    /// the 12 packed bytes at 4, regrouped as three 32-bit words u0, u1, u2 (<see cref="PackedScalar"/>, the
    /// twin) in one 16-byte register: two dword shuffles, a shift, a select, two masks and an or, where the
    /// scalar words took about 20 integer operations and three <c>vpinsrd</c> per block (a quarter of a
    /// Q4_K decode block's instructions).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> Packed(byte* block)
    {
        // Dwords of the block's first 16 bytes: [d|dmin, u0, u1, u2].
        var v = Vector128.Load((uint*)block);
        // [u0 & 3f, u2 & 0f, u1 & 3f, (u2 >> 4) & 0f] | [0, ((u0 >> 6) & 3) << 4, 0, ((u1 >> 6) & 3) << 4];
        // (u >> 2) & 0x30 moves bits 6-7 of each byte to bits 4-5 of the same byte.
        var x = Vector128.Shuffle(v, Vector128.Create(1u, 3, 2, 3));
        x = Vector128.ConditionalSelect(Vector128.Create(0, 0, 0, uint.MaxValue), Vector128.ShiftRightLogical(x, 4), x);
        var y = Vector128.ShiftRightLogical(Vector128.Shuffle(v, Vector128.Create(1u, 1, 2, 2)), 2);
        return ((x & Vector128.Create(0x3f3f3f3fu, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f))
            | (y & Vector128.Create(0u, 0x30303030, 0, 0x30303030))).AsByte();
    }

    /// <summary>The scalar twin of <see cref="Packed"/>: ggml's three-word regrouping.</summary>
    public static Vector128<byte> PackedScalar(byte* block)
    {
        const uint low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, low2 = 0x03030303;
        var words = (uint*)(block + 4);
        uint u0 = words[0], u1 = words[1], u2 = words[2];
        return Vector128.Create(
            u0 & low6,
            (u2 & low4) | (((u0 >> 6) & low2) << 4),
            u1 & low6,
            ((u2 >> 4) & low4) | (((u1 >> 6) & low2) << 4)).AsByte();
    }

    /// <summary>The shuffle of <see cref="Packed"/> that writes each per-32 minimum twice, once per 16 values.</summary>
    public static Vector128<byte> MinsPer16
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Vector128.Create((byte)8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    }

    /// <summary>Chunk c of 32-byte nibble runs: the low nibbles of run c/2 for even c, its high nibbles for odd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Nibbles(byte* runs, int c)
    {
        var v = Vector256.Load(runs + (c >> 1) * 32);
        if ((c & 1) != 0) v = Vector256.ShiftRightLogical(v.AsUInt16(), 4).AsByte();
        return v & Vector256.Create((byte)0x0F);
    }

    /// <summary>Each byte's bits from <paramref name="shift"/> up, masked (shifting 16-bit lanes is safe: the mask drops what crosses).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Bits(Vector256<byte> v, int shift, byte mask) =>
        Vector256.ShiftRightLogical(v.AsUInt16(), shift).AsByte() & Vector256.Create(mask);
}
