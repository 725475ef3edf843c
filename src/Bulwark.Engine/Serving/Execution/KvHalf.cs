using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Bulwark.Engine.Kernels.Cpu;

namespace Bulwark.Engine.Serving.Execution;

/// <summary>
/// float16 keys and values of an F16 KV cache to float32, in four vector operations per 16 values instead
/// of <see cref="HalfTable.ToSingle(ushort*, float*, int)"/>'s integer rebiasing (about a dozen): the half's
/// sign, exponent and mantissa are moved into float32's fields unchanged (a sign extension, a shift, a mask),
/// which reads as the half times 2^-112 exactly for every finite half (a subnormal half becomes a subnormal
/// float), and one multiplication by 2^112 restores it, exactly, since the product is a power-of-two rescale
/// that lands in float32's normal range. Infinities and NaNs (exponent all ones) are selected from the moved
/// bits with float32's all-ones exponent: an infinity as the table has it, a NaN a NaN with its payload (the table
/// also sets a signalling NaN's quiet bit; so does not <see cref="HalfTable.ToSingle(ushort*, float*, int)"/>'s vector path).
/// <para>
/// Perf: at 110M (12 KV heads, so a converted block serves one query head) decoding 32 sequences over an F16
/// cache spent 18 % of its CPU time converting with the table's vector path, against 55 % in the matmuls.
/// <see cref="HalfTable.ToSingle(ushort*, float*, int)"/> is the slow twin; the test compares all 65,536 patterns.
/// </para>
/// </summary>
internal static unsafe class KvHalf
{
    /// <summary>2^112: float32's exponent bias (127) less float16's (15).</summary>
    private const float Rebias = 5.192296858534828e+33f;

    /// <summary>Clears the copies of the sign that the sign extension left in bits 28–30.</summary>
    private const int Mask = unchecked((int)0x8FFFFFFF);

    /// <summary><paramref name="count"/> float16 values to float32, bit for bit the table's (a NaN stays a NaN).</summary>
    public static void ToSingle(ushort* source, float* destination, int count)
    {
        var i = 0;
        if (Avx512F.IsSupported)
        {
            for (; i + 16 <= count; i += 16)
                Convert(Avx512F.ConvertToVector512Int32(Vector256.Load((short*)source + i))).Store(destination + i);
        }
        else if (Avx2.IsSupported)
        {
            for (; i + 8 <= count; i += 8)
                Convert(Avx2.ConvertToVector256Int32((short*)source + i)).Store(destination + i);
        }
        for (; i < count; i++) destination[i] = HalfTable.ToSingle(source[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Convert(Vector512<int> h)
    {
        var moved = Vector512.ShiftLeft(h, 13) & Vector512.Create(Mask);
        var special = Vector512.Equals(h & Vector512.Create(0x7C00), Vector512.Create(0x7C00));
        return Vector512.ConditionalSelect(special.AsSingle(), (moved | Vector512.Create(0x7F800000)).AsSingle(), moved.AsSingle() * Vector512.Create(Rebias));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Convert(Vector256<int> h)
    {
        var moved = Vector256.ShiftLeft(h, 13) & Vector256.Create(Mask);
        var special = Vector256.Equals(h & Vector256.Create(0x7C00), Vector256.Create(0x7C00));
        return Vector256.ConditionalSelect(special.AsSingle(), (moved | Vector256.Create(0x7F800000)).AsSingle(), moved.AsSingle() * Vector256.Create(Rebias));
    }
}
