using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Bulwark.Engine.Kernels.Cpu;

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
