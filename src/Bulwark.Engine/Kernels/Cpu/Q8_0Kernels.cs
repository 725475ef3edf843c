using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Bulwark.Engine.Kernels.Cpu;

// Everything the int8 matmul does differently for Q8_0 weights: how the ggml-layout kernel
// (QuantizedKernels) and the repacked VNNI kernel (PackedMatMul) read a Q8_0 block. The loops both
// formats share are in those two files; Q4_0's part, with its own 512-bit kernel, is in Q4_0Kernels.cs.

/// <summary>Q8_0: f16 d, then 32 signed bytes.</summary>
internal unsafe struct Q8_0Block : IQuantBlock
{
    public static int Bytes => 34;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Quants(byte* block) => Vector256.Load((sbyte*)(block + 2));

    public static int Quant(byte* block, int i) => ((sbyte*)(block + 2))[i];
}

public static unsafe partial class PackedMatMul
{
    /// <summary>Chunk c is stored vector c: quants 4c..4c+3 of each of the 8 rows.</summary>
    private struct Q8Packed : IPackedFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Chunk(byte* block, int c) => Vector256.Load(block + c * 32);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static int Offset(int c) => c * 4;

        public static bool Signed => true;

        public static int ChunksIn16Bits => 1;

        public static int GroupBlockBytes => PackedQuantMatrix.GroupRows * 32;
    }
}
