using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Bulwark.Engine.Kernels.Reference;

namespace Bulwark.Engine.Kernels.Cpu;

// The other blocks of 32 with one f16 scale first that the ggml-layout int8 kernel (QuantizedKernels)
// runs as stored: Q5_0 and IQ4_NL. Their quants are signed bytes once unpacked, like Q4_0's.

/// <summary>Q5_0: f16 d, 32 high bits, 16 bytes of nibbles as Q4_0; quant = (nibble | fifth bit · 16) − 16.</summary>
internal unsafe struct Q5_0Block : IQuantBlock
{
    public static int Bytes => 22;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Quants(byte* block)
    {
        var (low, high) = Q4_0Block.Nibbles(block + 6);
        var qh = Vector128.Create(*(uint*)(block + 2)).AsByte();
        var fifthLow = SpreadBits(qh, Vector128.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
        var fifthHigh = SpreadBits(qh, Vector128.Create((byte)2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
        return Vector256.Create(low | fifthLow, high | fifthHigh).AsSByte() - Vector256.Create((sbyte)16);
    }

    /// <summary>Byte i = 16 when bit i % 8 of byte <paramref name="source"/>[i] of the high bits is set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> SpreadBits(Vector128<byte> qh, Vector128<byte> source)
    {
        var bit = Vector128.Create((byte)1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
        var bytes = Vector128.Shuffle(qh, source);
        return Vector128.Equals(bytes & bit, bit) & Vector128.Create((byte)16);
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
