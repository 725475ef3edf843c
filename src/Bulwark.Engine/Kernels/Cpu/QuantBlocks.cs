using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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
}

/// <summary>Q8_0: f16 d, then 32 signed bytes.</summary>
internal unsafe struct Q8_0Block : IQuantBlock
{
    public static int Bytes => 34;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Quants(byte* block) => Vector256.Load((sbyte*)(block + 2));

    public static int Quant(byte* block, int i) => ((sbyte*)(block + 2))[i];
}

/// <summary>Q4_0: f16 d, then 16 bytes; element j is the low nibble of byte j, j+16 its high nibble, both minus 8.</summary>
internal unsafe struct Q4_0Block : IQuantBlock
{
    public static int Bytes => 18;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Quants(byte* block)
    {
        var packed = Vector128.Load(block + 2);
        var mask = Vector128.Create((byte)0x0F);
        var low = packed & mask;
        var high = Vector128.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & mask;
        return Vector256.Create(low, high).AsSByte() - Vector256.Create((sbyte)8);
    }

    public static int Quant(byte* block, int i) =>
        i < 16 ? (block[2 + i] & 0x0F) - 8 : (block[2 + i - 16] >> 4) - 8;
}

/// <summary>
/// Σ w·x over 32 int8 pairs as 8 int32 partial sums (their total is the dot product).
/// Weights may be -128 (ggml files can hold it); activations are in [-127, 127].
/// </summary>
internal interface IInt8Dot
{
    static abstract Vector256<int> Dot(Vector256<sbyte> w, Vector256<sbyte> x);
}

/// <summary>Portable: widen to int16, multiply, widen and add. Correct anywhere, slow.</summary>
internal struct PortableDot : IInt8Dot
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(Vector256<sbyte> w, Vector256<sbyte> x)
    {
        var (wl, wh) = Vector256.Widen(w);
        var (xl, xh) = Vector256.Widen(x);
        var (p0, p1) = Vector256.Widen(wl * xl);
        var (p2, p3) = Vector256.Widen(wh * xh);
        return (p0 + p1) + (p2 + p3);
    }
}

/// <summary>
/// AVX2, as ggml's mul_sum_i8_pairs: |w| as unsigned times x with w's sign (vpsignb), pairs summed
/// to int16 (|w|·|x| ≤ 128·127, so a pair never saturates), then to int32.
/// </summary>
internal struct Avx2Dot : IInt8Dot
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(Vector256<sbyte> w, Vector256<sbyte> x)
    {
        var pairs = Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(x, w));
        return Avx2.MultiplyAddAdjacent(pairs, Vector256.Create((short)1));
    }
}

/// <summary>AVX-VNNI: vpdpbusd sums four u8·s8 products straight into int32.</summary>
internal struct VnniDot : IInt8Dot
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(Vector256<sbyte> w, Vector256<sbyte> x) =>
        AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, Avx2.Abs(w), Avx2.Sign(x, w));
}
