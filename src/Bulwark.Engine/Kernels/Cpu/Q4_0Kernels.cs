using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Kernels.Cpu;

// Everything the int8 matmul does differently for Q4_0 weights: how the ggml-layout kernel
// (QuantizedKernels) and the repacked VNNI kernel (PackedMatMul) read a Q4_0 block, and the 512-bit
// kernel only Q4_0 has. The loops both formats share are in those two files; Q8_0's part is in
// Q8_0Kernels.cs.

/// <summary>Q4_0: f16 d, then 16 bytes; element j is the low nibble of byte j, j+16 its high nibble, both minus 8.</summary>
internal unsafe struct Q4_0Block : IQuantBlock
{
    public static int Bytes => 18;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Quants(byte* block)
    {
        var (low, high) = Nibbles(block + 2);
        return Vector256.Create(low, high).AsSByte() - Vector256.Create((sbyte)8);
    }

    /// <summary>16 bytes of ggml's 32-value nibble layout: values 0-15 are the low nibbles, 16-31 the high ones.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector128<byte> Low, Vector128<byte> High) Nibbles(byte* quants)
    {
        var packed = Vector128.Load(quants);
        var mask = Vector128.Create((byte)0x0F);
        return (packed & mask, Vector128.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & mask);
    }

    public static int Quant(byte* block, int i) =>
        i < 16 ? (block[2 + i] & 0x0F) - 8 : (block[2 + i - 16] >> 4) - 8;
}

public static unsafe partial class PackedMatMul
{
    /// <summary>Widest rows the 512-bit kernel takes: a group pair's float scales (64 bytes a block) sit on the stack, at most 64 KiB.</summary>
    public const int MaxWideColumns = 32768;

    /// <summary>
    /// Whether <paramref name="type"/> runs its tiles of 8 tokens through the 512-bit kernel at
    /// <paramref name="isa"/>: Q4_0 with AVX-512 BW (.NET has no 512-bit <c>vpdpbusd</c>; <c>vpmaddubsw</c>
    /// on 512 bits does twice the products of a 256-bit <c>vpdpbusd</c>, and a 4-bit quant times an
    /// 8-bit one is small enough to sum a whole block in 16 bits). Q8_0's products are not.
    /// </summary>
    public static bool HasWidePath(GgmlType type, int columns, InstructionSet isa) =>
        type == GgmlType.Q4_0 && columns <= MaxWideColumns && isa >= InstructionSet.Avx512 && HasFastPath(isa) && KernelIsa.IsSupported(InstructionSet.Avx512);

    /// <summary>
    /// Groups g and g + 1 (16 rows) of a Q4_0 matrix: tiles of 8 tokens through <see cref="TileWide"/>,
    /// the last tokens (fewer than 8) through the 256-bit kernel one group at a time.
    /// </summary>
    [SkipLocalsInit] // the scale scratch is written in full before it is read
    private static void GroupPairWide(Job* job, int g, int t0, int t1)
    {
        var x = job->Activations;
        var groupBytes = (long)x.Blocks * job->GroupBlockBytes;
        var w = job->W + g * groupBytes;
        var scales = job->Scales + (long)g * x.Blocks * PackedQuantMatrix.GroupRows;
        var rowsHere = Math.Min(2 * PackedQuantMatrix.GroupRows, job->Rows - g * PackedQuantMatrix.GroupRows);
        var y = job->Y + (long)g * PackedQuantMatrix.GroupRows;
        var t = t0;
        if (t + 8 <= t1)
        {
            // Both groups' scales as floats, once for all tiles of tokens (a gather per tile and block cost
            // about 2 cycles per token and block): the groups' f16 scales are contiguous, one conversion.
            var count = x.Blocks * 2 * PackedQuantMatrix.GroupRows;
            var ws = stackalloc float[count];
            HalfTable.ToSingle(scales, ws, count);
            // The next pair's scales are a separate short run the hardware prefetcher does not see coming.
            if (g + 3 < job->Groups)
                for (var line = 0; line < count * sizeof(ushort); line += 64) Sse.Prefetch0((byte*)(scales + count) + line);
            for (; t + 8 <= t1; t += 8)
                TileWide(w, w + groupBytes, ws, ws + x.Blocks * PackedQuantMatrix.GroupRows, x, t, y, job->Rows, rowsHere);
        }
        if (t == t1) return;
        if (job->Vnni)
        {
            GroupVnni<Q4Packed, WithVnni>(job, g, t, t1);
            GroupVnni<Q4Packed, WithVnni>(job, g + 1, t, t1);
        }
        else
        {
            GroupVnni<Q4Packed, WithMadd>(job, g, t, t1);
            GroupVnni<Q4Packed, WithMadd>(job, g + 1, t, t1);
        }
    }

    /// <summary>
    /// The 512-bit Q4_0 micro-kernel: 16 rows (two packed groups side by side, one per 256-bit half)
    /// × 8 tokens. Per block and token, 8 <c>vpmaddubsw</c> (nibble × activation byte, adjacent pairs
    /// summed to 16 bits) are added in 16 bits — at most 16 products of 15 × 127 per lane, 30480, so
    /// nothing saturates — and one <c>vpmaddwd</c> by 1 gives each row's exact block sum: the same
    /// integer the scalar twin computes, scaled and accumulated in the same order, so the results are
    /// equal bit for bit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TileWide(byte* w0, byte* w1, float* scales0, float* scales1, Q8Rows x, int t, float* y, int yStride, int rowsHere)
    {
        var blocks = x.Blocks;
        var stride = (long)blocks * 32;
        var tokens = x.Quants + t * stride;
        Vector512<float> f0 = default, f1 = default, f2 = default, f3 = default, f4 = default, f5 = default, f6 = default, f7 = default;
        var nibble = Vector512.Create((byte)0x0F);
        for (var b = 0; b < blocks; b++)
        {
            var a = w0 + (long)b * 128;
            var c = w1 + (long)b * 128;
            // 16 blocks ahead in both groups: with few tokens the weights stream from memory faster than the prefetcher fetches them.
            Sse.Prefetch0(a + 2048);
            Sse.Prefetch0(a + 2112);
            Sse.Prefetch0(c + 2048);
            Sse.Prefetch0(c + 2112);
            var v0 = Vector512.Create(Vector256.Load(a), Vector256.Load(c));
            var v1 = Vector512.Create(Vector256.Load(a + 32), Vector256.Load(c + 32));
            var v2 = Vector512.Create(Vector256.Load(a + 64), Vector256.Load(c + 64));
            var v3 = Vector512.Create(Vector256.Load(a + 96), Vector256.Load(c + 96));
            var l = new Nibbles(v0 & nibble, v1 & nibble, v2 & nibble, v3 & nibble);
            var h = new Nibbles(
                Vector512.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & nibble,
                Vector512.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & nibble,
                Vector512.ShiftRightLogical(v2.AsUInt16(), 4).AsByte() & nibble,
                Vector512.ShiftRightLogical(v3.AsUInt16(), 4).AsByte() & nibble);
            var ws = Vector512.Create(Vector256.Load(scales0 + b * PackedQuantMatrix.GroupRows), Vector256.Load(scales1 + b * PackedQuantMatrix.GroupRows));
            var q = tokens + b * 32;
            var index = (long)t * blocks + b;
            f0 = TokenWide(f0, l, h, q, ws, x, index);
            f1 = TokenWide(f1, l, h, q + stride, ws, x, index + blocks);
            f2 = TokenWide(f2, l, h, q + 2 * stride, ws, x, index + 2 * blocks);
            f3 = TokenWide(f3, l, h, q + 3 * stride, ws, x, index + 3 * blocks);
            f4 = TokenWide(f4, l, h, q + 4 * stride, ws, x, index + 4 * blocks);
            f5 = TokenWide(f5, l, h, q + 5 * stride, ws, x, index + 5 * blocks);
            f6 = TokenWide(f6, l, h, q + 6 * stride, ws, x, index + 6 * blocks);
            f7 = TokenWide(f7, l, h, q + 7 * stride, ws, x, index + 7 * blocks);
        }
        var yt = y + (long)t * yStride;
        StoreWide(f0, yt, rowsHere);
        StoreWide(f1, yt + yStride, rowsHere);
        StoreWide(f2, yt + 2L * yStride, rowsHere);
        StoreWide(f3, yt + 3L * yStride, rowsHere);
        StoreWide(f4, yt + 4L * yStride, rowsHere);
        StoreWide(f5, yt + 5L * yStride, rowsHere);
        StoreWide(f6, yt + 6L * yStride, rowsHere);
        StoreWide(f7, yt + 7L * yStride, rowsHere);
    }

    /// <summary>A block's 16 rows of 4-bit quants as four 512-bit chunks (4 quants of each row per chunk).</summary>
    private readonly struct Nibbles(Vector512<byte> c0, Vector512<byte> c1, Vector512<byte> c2, Vector512<byte> c3)
    {
        public readonly Vector512<byte> C0 = c0, C1 = c1, C2 = c2, C3 = c3;
    }

    /// <summary>One token's block: low nibbles are quants 0..15 of the block, high nibbles 16..31.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> TokenWide(Vector512<float> f, Nibbles l, Nibbles h, sbyte* q, Vector512<float> ws, Q8Rows x, long index)
    {
        var p0 = Avx512BW.MultiplyAddAdjacent(l.C0, BroadcastWide(q));
        var p1 = Avx512BW.MultiplyAddAdjacent(l.C1, BroadcastWide(q + 4));
        var p2 = Avx512BW.MultiplyAddAdjacent(l.C2, BroadcastWide(q + 8));
        var p3 = Avx512BW.MultiplyAddAdjacent(l.C3, BroadcastWide(q + 12));
        var p4 = Avx512BW.MultiplyAddAdjacent(h.C0, BroadcastWide(q + 16));
        var p5 = Avx512BW.MultiplyAddAdjacent(h.C1, BroadcastWide(q + 20));
        var p6 = Avx512BW.MultiplyAddAdjacent(h.C2, BroadcastWide(q + 24));
        var p7 = Avx512BW.MultiplyAddAdjacent(h.C3, BroadcastWide(q + 28));
        var pairs = (p0 + p1 + (p2 + p3)) + (p4 + p5 + (p6 + p7));
        var dot = Avx512BW.MultiplyAddAdjacent(pairs, Vector512<short>.One);
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(dot - Vector512.Create(x.Sums[index])), ws * Vector512.Create(x.Scales[index]), f);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<sbyte> BroadcastWide(sbyte* quants) => Vector512.Create(*(int*)quants).AsSByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreWide(Vector512<float> v, float* y, int rowsHere)
    {
        if (rowsHere == 2 * PackedQuantMatrix.GroupRows) { v.Store(y); return; }
        Store(v.GetLower(), y, Math.Min(rowsHere, PackedQuantMatrix.GroupRows)); // masked, as the 256-bit kernel's
        if (rowsHere > PackedQuantMatrix.GroupRows) Store(v.GetUpper(), y + PackedQuantMatrix.GroupRows, rowsHere - PackedQuantMatrix.GroupRows);
    }

    /// <summary>Chunks 0..3 are the low nibbles of the 4 stored vectors (quants 4c..), 4..7 their high nibbles (quants 16 + 4(c−4)..).</summary>
    private struct Q4Packed : IPackedFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Chunk(byte* block, int c)
        {
            var v = Vector256.Load(block + (c & 3) * 32);
            if (c >= 4) v = Vector256.ShiftRightLogical(v.AsUInt16(), 4).AsByte();
            return v & Vector256.Create((byte)0x0F);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static int Offset(int c) => c < 4 ? c * 4 : 16 + (c - 4) * 4;

        public static int ChunksIn16Bits => 8;

        public static int GroupBlockBytes => PackedQuantMatrix.GroupRows * 16;
    }
}
