using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// float32 value of every float16 bit pattern, as ggml's <c>ggml_table_f32_f16</c>: block scales are
/// read once per block per row, and a table load beats converting <see cref="Half"/> in software.
/// </summary>
internal static unsafe class HalfTable
{
    private static readonly float* Table = Build();

    /// <summary>The table itself, for gathers of 8 scales at once.</summary>
    public static float* Pointer => Table;

    public static float ToSingle(ushort bits) => Table[bits];

    public static float ToSingle(byte* halfBits) => Table[*(ushort*)halfBits];

    /// <summary>
    /// <paramref name="count"/> float16 values to float32, 32 at a time by bit arithmetic on 512-bit
    /// vectors where the hardware has them (the table for the rest): the same bits as the table for
    /// every pattern, subnormals, infinities and NaNs included.
    /// </summary>
    public static void ToSingle(ushort* source, float* destination, int count)
    {
        var i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + 32 <= count; i += 32)
            {
                var halves = Vector512.Load(source + i);
                Widen(Vector512.WidenLower(halves)).Store(destination + i);
                Widen(Vector512.WidenUpper(halves)).Store(destination + i + 16);
            }
        }
        for (; i < count; i++) destination[i] = Table[source[i]];
    }

    /// <summary>
    /// Exponent and mantissa moved to float32's places and multiplied by 2^112 (the difference of the
    /// exponent biases: exact for normal and subnormal values and zero); an all-ones exponent is kept
    /// all ones (infinity, NaN made quiet as the runtime's conversion does); the sign put back.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Widen(Vector512<uint> h)
    {
        var magnitude = (h & Vector512.Create(0x7FFFu)) << 13;
        var rebased = (magnitude.AsSingle() * Vector512.Create(BitConverter.Int32BitsToSingle((127 + 112) << 23))).AsUInt32();
        var quiet = ~Vector512.Equals(h & Vector512.Create(0x3FFu), Vector512<uint>.Zero) & Vector512.Create(0x400000u);
        var special = magnitude | Vector512.Create(0x7F800000u) | quiet;
        var isSpecial = Vector512.Equals(h & Vector512.Create(0x7C00u), Vector512.Create(0x7C00u));
        return (Vector512.ConditionalSelect(isSpecial, special, rebased) | ((h & Vector512.Create(0x8000u)) << 16)).AsSingle();
    }

    private static float* Build()
    {
        // Lives for the process, like the runtime's own tables.
        var table = (float*)NativeMemory.AlignedAlloc(65536 * sizeof(float), 64);
        for (var i = 0; i < 65536; i++) table[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        return table;
    }
}
