using System.Runtime.InteropServices;

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

    private static float* Build()
    {
        // Lives for the process, like the runtime's own tables.
        var table = (float*)NativeMemory.AlignedAlloc(65536 * sizeof(float), 64);
        for (var i = 0; i < 65536; i++) table[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        return table;
    }
}
