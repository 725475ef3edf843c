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
    /// <paramref name="count"/> float16 values to float32, 16 at a time with <see cref="F16Row"/>'s integer
    /// conversion where the hardware has 512-bit vectors (the table for the rest): the table's value for
    /// every pattern (a NaN stays a NaN, its quiet bit as stored).
    /// </summary>
    public static void ToSingle(ushort* source, float* destination, int count)
    {
        var i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i + 16 <= count; i += 16) F16Row.Load16((byte*)source, i).Store(destination + i);
        for (; i < count; i++) destination[i] = Table[source[i]];
    }

    private static float* Build()
    {
        // Lives for the process, like the runtime's own tables.
        var table = (float*)NativeMemory.AlignedAlloc(65536 * sizeof(float), 64);
        for (var i = 0; i < 65536; i++) table[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        return table;
    }
}
