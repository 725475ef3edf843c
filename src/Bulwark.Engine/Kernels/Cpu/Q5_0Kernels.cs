using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Bulwark.Engine.Kernels.Reference;

namespace Bulwark.Engine.Kernels.Cpu;

// The other blocks of 32 with an f16 scale first that the ggml-layout int8 kernel (QuantizedKernels)
// runs as stored: Q5_0 and IQ4_NL (signed quants once unpacked, like Q4_0's), and Q4_1 and Q5_1
// (unsigned quants and an f16 minimum m after d: value = d·q + m).

/// <summary>Q5_0: f16 d, 32 high bits, 16 bytes of nibbles as Q4_0; quant = (nibble | fifth bit · 16) − 16.</summary>
internal unsafe struct Q5_0Block : IQuantBlock
{
    public static int Bytes => 22;

    /// <summary>
    /// As ggml's AVX2 path: where a quant's fifth bit is clear its nibble gets 0xF0 or-ed in, which as a signed
    /// byte is nibble − 16; where it is set the nibble alone is (nibble + 16) − 16. One or, no subtraction.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Quants(byte* block) =>
        (Nibbles(block + 6) | Vector256.AndNot(Vector256.Create((byte)0xF0), FifthBits(block + 2))).AsSByte();

    /// <summary>The 32 five-bit quants (0-31) from 4 bytes of high bits and 16 bytes of nibbles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Unsigned(byte* highBits, byte* nibbles) =>
        Nibbles(nibbles) | (FifthBits(highBits) & Vector256.Create((byte)16));

    /// <summary>Quant i's nibble in byte i (Q4_0's layout: the low nibbles are quants 0-15, the high ones 16-31).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Nibbles(byte* nibbles)
    {
        var (low, high) = Q4_0Block.Nibbles(nibbles);
        return Vector256.Create(low, high);
    }

    /// <summary>Byte i all ones when bit i of the 32 high bits is set: the 4 bytes broadcast, byte i/8 picked, bit i%8 tested.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> FifthBits(byte* highBits)
    {
        var qh = Vector256.Create(*(uint*)highBits).AsByte();
        // Every 128-bit lane holds all 4 bytes, so the in-lane vpshufb and the whole-vector shuffle pick the same.
        var index = Vector256.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        var bytes = Avx2.IsSupported ? Avx2.Shuffle(qh, index) : Vector256.Shuffle(qh, index);
        var bit = Vector256.Create((byte)1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
        return Vector256.Equals(bytes & bit, bit);
    }

    public static int Quant(byte* block, int i)
    {
        var (low, high) = Dequantize.Five(block[6 + (i & 15)], *(uint*)(block + 2), i & 15);
        return (i < 16 ? low : high) - 16;
    }
}

/// <summary>IQ4_NL: f16 d, 16 bytes of nibbles as Q4_0, each an index into the 16 non-linear levels.</summary>
internal unsafe struct IQ4_NLBlock : IQuantBlock
{
    public static int Bytes => 18;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Quants(byte* block)
    {
        var (low, high) = Q4_0Block.Nibbles(block + 2);
        return Vector256.Create(Levels(low), Levels(high));
    }

    /// <summary>A 16-entry table lookup: <c>pshufb</c> where there is one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<sbyte> Levels(Vector128<byte> nibbles)
    {
        var table = Vector128.Create((sbyte)-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
        return Ssse3.IsSupported ? Ssse3.Shuffle(table, nibbles.AsSByte()) : Vector128.Shuffle(table, nibbles.AsSByte());
    }

    public static int Quant(byte* block, int i) =>
        Dequantize.IQ4Levels[i < 16 ? block[2 + i] & 0x0F : block[2 + i - 16] >> 4];
}

/// <summary>Q4_1: f16 d, f16 m, 16 bytes of nibbles as Q4_0 (unsigned, 0-15); value = d·q + m.</summary>
internal unsafe struct Q4_1Block : IQuantBlock
{
    public static int Bytes => 20;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Quants(byte* block)
    {
        var (low, high) = Q4_0Block.Nibbles(block + 4);
        return Vector256.Create(low, high).AsSByte();
    }

    public static int Quant(byte* block, int i) => i < 16 ? block[4 + i] & 0x0F : block[4 + i - 16] >> 4;

    public static bool HasMin => true;

    public static float Min(byte* block) => HalfTable.ToSingle(block + 2);
}

/// <summary>Q5_1: f16 d, f16 m, 32 high bits, 16 bytes of nibbles (unsigned, 0-31); value = d·q + m.</summary>
internal unsafe struct Q5_1Block : IQuantBlock
{
    public static int Bytes => 24;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Quants(byte* block) => Q5_0Block.Unsigned(block + 4, block + 8).AsSByte();

    public static int Quant(byte* block, int i)
    {
        var (low, high) = Dequantize.Five(block[8 + (i & 15)], *(uint*)(block + 4), i & 15);
        return i < 16 ? low : high;
    }

    public static bool HasMin => true;

    public static float Min(byte* block) => HalfTable.ToSingle(block + 2);
}

public static unsafe partial class PackedMatMul
{
    /// <summary>
    /// A packed Q5_0 group block: Q4_0's chunks of nibbles, each with its fifth bits or-ed in as 16 — chunk c's are bit c
    /// of the block's last vector (<see cref="PackedQuantMatrix"/>), moved to bit 4 with one 16-bit shift (bit 4 of each
    /// byte comes from the same byte: shifts of at most 4) and one mask.
    /// </summary>
    private struct Q5Packed : IPackedFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Chunk(byte* block, int c)
        {
            var high = Vector256.Load(block + PackedQuantMatrix.FifthBitsAt).AsUInt16();
            high = c < 4 ? Vector256.ShiftLeft(high, 4 - c) : Vector256.ShiftRightLogical(high, c - 4);
            return Q4Packed.Chunk(block, c) | (high.AsByte() & Vector256.Create((byte)0x10));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static int Offset(int c) => Q4Packed.Offset(c);

        public static int ChunksIn16Bits => 4;

        public static int GroupBlockBytes => PackedQuantMatrix.FifthBitsAt + PackedQuantMatrix.GroupRows * 4;
    }
}
