using System.Runtime.InteropServices;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Cpu;

namespace Bulwark.Engine.Tests.Kernels;

/// <summary>Random weights in ggml block layouts and random activations, in native memory, for kernel tests.</summary>
internal sealed unsafe class RandomMatrix : IDisposable
{
    public RandomMatrix(GgmlType type, int rows, int columns, int seed, bool negativeScales = false)
    {
        Type = type;
        Rows = rows;
        Columns = columns;
        RowBytes = GgmlTypes.ByteSize(type, columns);
        Data = (byte*)NativeMemory.AlignedAlloc((nuint)(RowBytes * rows + 64), 64);
        var random = new Random(seed);
        var bytes = new Span<byte>(Data, checked((int)(RowBytes * rows)));
        switch (type)
        {
            case GgmlType.F32:
                var f = MemoryMarshal.Cast<byte, float>(bytes);
                for (var i = 0; i < f.Length; i++) f[i] = (float)(random.NextDouble() * 2 - 1);
                break;
            case GgmlType.F16:
                var h = MemoryMarshal.Cast<byte, Half>(bytes);
                for (var i = 0; i < h.Length; i++) h[i] = (Half)(random.NextDouble() * 2 - 1);
                break;
            case GgmlType.BF16:
                var u = MemoryMarshal.Cast<byte, ushort>(bytes);
                for (var i = 0; i < u.Length; i++) u[i] = (ushort)(BitConverter.SingleToInt32Bits((float)(random.NextDouble() * 2 - 1)) >> 16);
                break;
            default:
                // Quant bytes fully random (Q8_0 includes -128, which ggml files may hold), scales sane.
                random.NextBytes(bytes);
                var blockBytes = GgmlTypes.BlockBytes(type);
                // Where each format keeps its f16 scales: d first for most, then the minimum (Q4_1, Q5_1, Q4_K,
                // Q5_K); Q2_K's d and dmin, Q3_K's and Q6_K's d last.
                int[] scaleOffsets = type switch
                {
                    GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q4_1 or GgmlType.Q5_1 => [0, 2],
                    GgmlType.Q2_K => [80, 82],
                    GgmlType.Q3_K => [108],
                    GgmlType.Q6_K => [208],
                    _ => [0],
                };
                for (var b = 0; b < bytes.Length / blockBytes; b++)
                foreach (var offset in scaleOffsets)
                    MemoryMarshal.Write(bytes.Slice(b * blockBytes + offset), (Half)((random.NextDouble() * 0.02 + 0.001) * (negativeScales && random.Next(2) == 0 ? -1 : 1)));
                break;
        }
    }

    public GgmlType Type { get; }
    public int Rows { get; }
    public int Columns { get; }
    public long RowBytes { get; }
    public byte* Data { get; }

    public static float[] Activations(int tokens, int columns, int seed)
    {
        var random = new Random(seed);
        var x = new float[tokens * columns];
        for (var i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 4 - 2);
        return x;
    }

    public float[] Multiply(float[] x, int tokens, InstructionSet isa, WorkerPool pool)
    {
        var y = new float[tokens * Rows];
        fixed (float* px = x)
        fixed (float* py = y)
            MatMul.Apply(Type, Data, RowBytes, Rows, Columns, px, py, tokens, isa, pool);
        return y;
    }

    public void Dispose() => NativeMemory.AlignedFree(Data);
}
