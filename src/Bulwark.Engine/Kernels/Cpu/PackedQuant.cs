using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Memory;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// Q8_0 or Q4_0 weights repacked for the VNNI kernel: rows in groups of 8, interleaved 4 bytes at a
/// time, so one 256-bit vector holds the same 4 quants of 8 rows and one <c>vpdpbusd</c> against 4
/// broadcast activation bytes advances 8 dot products at once. The per-block work that the
/// ggml layout pays for every (row, token) pair (sign fix-up, int→float, scale) is then paid once
/// per 8 rows, and each group's weights stay in registers across a tile of 4 tokens.
/// <para>
/// <c>vpdpbusd</c> multiplies unsigned by signed bytes, so the weights are stored unsigned: a Q8_0
/// quant w as w + 128 (w ^ 0x80), a Q4_0 nibble as it is (value + 8). The offset times Σx of the
/// activation block is subtracted once per block (<see cref="Q8Rows.Sums"/>). Integer sums are
/// exact, so the result equals the scalar twin bit for bit.
/// </para>
/// Layout: <see cref="Quants"/> holds, per group and block, Q8_0: 8 vectors k = 0..7 of [row 0
/// quants 4k..4k+3, row 1 …, row 7 …]; Q4_0: 4 vectors k = 0..3 of the same rows' ggml bytes
/// 4k..4k+3 (low nibbles are quants 4k.., high nibbles quants 16+4k..). <see cref="Scales"/> holds the
/// 8 rows' f16 scales per group and block. Rows past the end of the matrix are zero.
/// </summary>
public sealed unsafe class PackedQuantMatrix : IDisposable
{
    public const int GroupRows = 8;
    private const int Block = 32;

    private PackedQuantMatrix(GgmlType type, int rows, int columns)
    {
        Type = type;
        Rows = rows;
        Columns = columns;
        Groups = (rows + GroupRows - 1) / GroupRows;
        Blocks = columns / Block;
        GroupBlockBytes = type == GgmlType.Q8_0 ? GroupRows * Block : GroupRows * Block / 2;
        var blocks = (long)Groups * Blocks;
        Quants = (byte*)AnonymousPages.Allocate(QuantBytes);
        Scales = (ushort*)AnonymousPages.Allocate(ScaleBytes);
    }

    public GgmlType Type { get; }
    public int Rows { get; }
    public int Columns { get; }
    public int Groups { get; }
    public int Blocks { get; }

    /// <summary>Bytes of quants per group and block: 256 for Q8_0, 128 for Q4_0.</summary>
    public int GroupBlockBytes { get; }

    public byte* Quants { get; private set; }
    public ushort* Scales { get; private set; }

    /// <summary>What Σx is multiplied by to undo the unsigned storage: 128 for Q8_0, 8 for Q4_0.</summary>
    public int Offset => Type == GgmlType.Q8_0 ? 128 : 8;

    /// <summary>Bytes this copy holds (quants and scales).</summary>
    public long ByteSize => QuantBytes + ScaleBytes;

    private long QuantBytes => (long)Groups * Blocks * GroupBlockBytes;
    private long ScaleBytes => (long)Groups * Blocks * GroupRows * sizeof(ushort);

    public static bool CanPack(GgmlType type, int columns) =>
        type is GgmlType.Q8_0 or GgmlType.Q4_0 && columns > 0 && columns % Block == 0;

    /// <summary>Repacks rows of ggml Q8_0/Q4_0 blocks (<paramref name="rowBytes"/> apart), one group per work item.</summary>
    public static PackedQuantMatrix Pack(GgmlType type, byte* data, long rowBytes, int rows, int columns, WorkerPool pool)
    {
        if (!CanPack(type, columns))
            throw new ArgumentException($"only Q8_0/Q4_0 rows of whole 32-value blocks can be packed; got {type} with {columns} columns");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        var packed = new PackedQuantMatrix(type, rows, columns);
        var job = new PackJob { Source = data, RowBytes = rowBytes, Packed = packed.Quants, Scales = packed.Scales, Rows = rows, Blocks = packed.Blocks, GroupBlockBytes = packed.GroupBlockBytes, IsQ8 = type == GgmlType.Q8_0 };
        pool.Run(&PackGroup, &job, packed.Groups);
        return packed;
    }

    private struct PackJob
    {
        public byte* Source, Packed;
        public ushort* Scales;
        public long RowBytes;
        public int Rows, Blocks, GroupBlockBytes;
        public bool IsQ8;
    }

    private static void PackGroup(void* context, int group)
    {
        var job = (PackJob*)context;
        var blockBytes = job->IsQ8 ? 34 : 18;
        var words = job->IsQ8 ? 8 : 4; // 4-byte words of quants per row and block
        for (var b = 0; b < job->Blocks; b++)
        {
            var index = (long)group * job->Blocks + b;
            var destination = job->Packed + index * job->GroupBlockBytes;
            var scales = job->Scales + index * GroupRows;
            for (var lane = 0; lane < GroupRows; lane++)
            {
                var row = group * GroupRows + lane;
                if (row >= job->Rows)
                {
                    scales[lane] = 0;
                    for (var k = 0; k < words; k++) *(uint*)(destination + (k * GroupRows + lane) * 4) = 0;
                    continue;
                }
                var block = job->Source + row * job->RowBytes + b * blockBytes;
                scales[lane] = *(ushort*)block;
                for (var k = 0; k < words; k++)
                {
                    var word = *(uint*)(block + 2 + k * 4);
                    *(uint*)(destination + (k * GroupRows + lane) * 4) = job->IsQ8 ? word ^ 0x80808080u : word;
                }
            }
        }
    }

    /// <summary>
    /// Row <paramref name="row"/> back in its ggml layout (f16 scale and quants per 32-value block),
    /// exactly the bytes that were packed: for a matrix that kept only this copy.
    /// </summary>
    public void StoredRow(int row, Span<byte> destination)
    {
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row), row, $"the matrix has {Rows} rows");
        var isQ8 = Type == GgmlType.Q8_0;
        var blockBytes = isQ8 ? 34 : 18;
        var words = isQ8 ? 8 : 4;
        if (destination.Length < Blocks * blockBytes)
            throw new ArgumentException($"a row needs {Blocks * blockBytes} bytes; got {destination.Length}", nameof(destination));
        var group = row / GroupRows;
        var lane = row % GroupRows;
        fixed (byte* d = destination)
        {
            for (var b = 0; b < Blocks; b++)
            {
                var index = (long)group * Blocks + b;
                var block = d + b * blockBytes;
                *(ushort*)block = Scales[index * GroupRows + lane];
                var source = Quants + index * GroupBlockBytes;
                for (var k = 0; k < words; k++)
                {
                    var word = *(uint*)(source + (k * GroupRows + lane) * 4);
                    *(uint*)(block + 2 + k * 4) = isQ8 ? word ^ 0x80808080u : word;
                }
            }
        }
    }

    public void Dispose()
    {
        AnonymousPages.Free(Quants, QuantBytes);
        AnonymousPages.Free(Scales, ScaleBytes);
        Quants = null;
        Scales = null;
    }
}

/// <summary>
/// Y[tokens × rows] = X · Wᵀ over a <see cref="PackedQuantMatrix"/>: activations quantized to 8-bit
/// blocks with their sums, then work items of row groups, each walking every tile of tokens.
/// The VNNI micro-kernel computes 8 rows × 4 tokens; its scalar twin does the same arithmetic in
/// the same order.
/// </summary>
public static unsafe class PackedMatMul
{
    /// <summary>Tokens per cache tile: 64 activation rows stay in L2 while a row group is walked over them.</summary>
    private const int TokenTile = 64;

    /// <summary>Whether the VNNI kernel can run at <paramref name="isa"/> (the scalar twin always can).</summary>
    public static bool HasFastPath(InstructionSet isa) => isa >= InstructionSet.AvxVnni && AvxVnni.IsSupported;

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

    public static void Apply(PackedQuantMatrix w, float* x, float* y, int tokens, InstructionSet isa, WorkerPool pool)
    {
        CheckIsa(isa);
        if (tokens <= 0) return;
        var job = Part(w, y, tokens, isa, pool);
        Quantize(&job, x, tokens, pool);
        pool.Run(&GroupChunk, &job, job.Items);
    }

    /// <summary>
    /// Two or three matrices over the same input (Q/K/V, gate/up): the activations are quantized once
    /// and one dispatch of the worker pool covers every matrix's row groups, instead of one each.
    /// The matrices must share their type and column count; <paramref name="c"/> may be null.
    /// </summary>
    public static void ApplyShared(float* x, int tokens, PackedQuantMatrix a, float* ya, PackedQuantMatrix b, float* yb,
        PackedQuantMatrix? c, float* yc, InstructionSet isa, WorkerPool pool)
    {
        CheckIsa(isa);
        if (!CanShare(a, b) || (c is not null && !CanShare(a, c)))
            throw new ArgumentException("shared matrices must have the same type and column count");
        if (tokens <= 0) return;
        var ja = Part(a, ya, tokens, isa, pool);
        var jb = Part(b, yb, tokens, isa, pool);
        var jc = c is null ? default : Part(c, yc, tokens, isa, pool);
        Quantize(&ja, x, tokens, pool);
        jb.Activations = jc.Activations = ja.Activations;
        var shared = new SharedJob { A = &ja, B = &jb, C = &jc, ItemsA = ja.Items, ItemsB = jb.Items };
        pool.Run(&SharedChunk, &shared, ja.Items + jb.Items + (c is null ? 0 : jc.Items));
    }

    /// <summary>Whether two packed matrices can run from one quantization of the same input.</summary>
    public static bool CanShare(PackedQuantMatrix a, PackedQuantMatrix b) => a.Type == b.Type && a.Columns == b.Columns;

    private static void CheckIsa(InstructionSet isa)
    {
        if (isa != InstructionSet.Scalar && !HasFastPath(isa))
            throw new ArgumentOutOfRangeException(nameof(isa), isa, "the packed kernel runs on AVX-VNNI or as its scalar twin");
    }

    private static Job Part(PackedQuantMatrix w, float* y, int tokens, InstructionSet isa, WorkerPool pool)
    {
        // Enough items to balance the threads; each a run of groups whose weights are reused by all tokens.
        // The 512-bit Q4_0 kernel takes groups two at a time, so its runs are whole pairs.
        var wide = HasWidePath(w.Type, w.Columns, isa);
        var chunk = Math.Max(1, w.Groups / (pool.ThreadCount * 8));
        if (wide) chunk = Math.Max(2, chunk + (chunk & 1));
        return new Job
        {
            W = w.Quants, Scales = w.Scales, Offset = w.Offset, IsQ8 = w.Type == GgmlType.Q8_0, GroupBlockBytes = w.GroupBlockBytes,
            Rows = w.Rows, Groups = w.Groups, Columns = w.Columns, Y = y, Tokens = tokens, Scalar = isa == InstructionSet.Scalar,
            QuantizeIsa = isa == InstructionSet.Scalar ? InstructionSet.Scalar : InstructionSet.Avx2,
            ChunkGroups = chunk, Items = (w.Groups + chunk - 1) / chunk, Wide = wide,
        };
    }

    /// <summary>The input's 8-bit blocks and sums, in this thread's scratch, for <paramref name="job"/>'s offset.</summary>
    private static void Quantize(Job* job, float* x, int tokens, WorkerPool pool)
    {
        job->Activations = Q8Activations.ForThread(tokens, job->Columns).Rows;
        job->X = x;
        if (tokens >= 8) pool.Run(&QuantizeItem, job, tokens);
        else job->Activations.Quantize(x, 0, tokens, job->QuantizeIsa, job->Offset);
    }

    private struct SharedJob
    {
        public Job* A, B, C;
        public int ItemsA, ItemsB;
    }

    private static void SharedChunk(void* context, int item)
    {
        var shared = (SharedJob*)context;
        if (item < shared->ItemsA)
        {
            GroupChunk(shared->A, item);
            return;
        }
        item -= shared->ItemsA;
        if (item < shared->ItemsB) GroupChunk(shared->B, item);
        else GroupChunk(shared->C, item - shared->ItemsB);
    }

    private struct Job
    {
        public byte* W;
        public ushort* Scales;
        public int Offset, GroupBlockBytes, Rows, Groups, Columns, Tokens, ChunkGroups, Items;
        public bool IsQ8, Scalar;

        /// <summary>Q4_0 on AVX-512 BW: pairs of row groups through the 512-bit kernel (<see cref="GroupPairWide"/>).</summary>
        public bool Wide;
        public InstructionSet QuantizeIsa;
        public float* X, Y;
        public Q8Rows Activations;
    }

    private static void QuantizeItem(void* context, int token)
    {
        var job = (Job*)context;
        job->Activations.Quantize(job->X, token, 1, job->QuantizeIsa, job->Offset);
    }

    private static void GroupChunk(void* context, int item)
    {
        var job = (Job*)context;
        var g0 = item * job->ChunkGroups;
        var g1 = Math.Min(job->Groups, g0 + job->ChunkGroups);
        for (var t0 = 0; t0 < job->Tokens; t0 += TokenTile)
        {
            var t1 = Math.Min(job->Tokens, t0 + TokenTile);
            var g = g0;
            if (job->Wide)
                for (; g + 1 < g1; g += 2) GroupPairWide(job, g, t0, t1);
            for (; g < g1; g++)
            {
                if (job->Scalar) GroupScalar(job, g, t0, t1);
                else if (job->IsQ8) GroupVnni<Q8Packed>(job, g, t0, t1);
                else GroupVnni<Q4Packed>(job, g, t0, t1);
            }
        }
    }

    /// <summary>The twin: per lane (row) and token, the block's exact integer sum, then one FMA per block in block order.</summary>
    private static void GroupScalar(Job* job, int g, int t0, int t1)
    {
        var x = job->Activations;
        var blocks = x.Blocks;
        for (var lane = 0; lane < PackedQuantMatrix.GroupRows; lane++)
        {
            var row = g * PackedQuantMatrix.GroupRows + lane;
            if (row >= job->Rows) break;
            for (var t = t0; t < t1; t++)
            {
                var sum = 0f;
                for (var b = 0; b < blocks; b++)
                {
                    var index = (long)g * blocks + b;
                    var w = job->W + index * job->GroupBlockBytes;
                    var xq = x.Quants + ((long)t * blocks + b) * 32;
                    var dot = 0;
                    for (var i = 0; i < 32; i++) dot += PackedQuant(w, job->IsQ8, lane, i) * xq[i];
                    dot -= x.Sums[(long)t * blocks + b];
                    sum = MathF.FusedMultiplyAdd(dot, HalfTable.ToSingle(job->Scales[index * PackedQuantMatrix.GroupRows + lane]) * x.Scales[(long)t * blocks + b], sum);
                }
                job->Y[(long)t * job->Rows + row] = sum;
            }
        }
    }

    /// <summary>Stored (unsigned) quant i of one lane in a packed group block.</summary>
    private static int PackedQuant(byte* w, bool isQ8, int lane, int i)
    {
        if (isQ8) return w[((i / 4) * PackedQuantMatrix.GroupRows + lane) * 4 + i % 4];
        var j = i % 16;
        var b = w[((j / 4) * PackedQuantMatrix.GroupRows + lane) * 4 + j % 4];
        return i < 16 ? b & 0x0F : b >> 4;
    }

    /// <summary>8 rows × 8 tokens per pass (then 4, then 1); the group's blocks are re-read from L1 for each pass.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GroupVnni<TF>(Job* job, int g, int t0, int t1) where TF : struct, IPackedFormat
    {
        var x = job->Activations;
        var w = job->W + (long)g * x.Blocks * job->GroupBlockBytes;
        var scales = job->Scales + (long)g * x.Blocks * PackedQuantMatrix.GroupRows;
        var rowsHere = Math.Min(PackedQuantMatrix.GroupRows, job->Rows - g * PackedQuantMatrix.GroupRows);
        var y = job->Y + (long)g * PackedQuantMatrix.GroupRows;
        var t = t0;
        for (; t + 8 <= t1; t += 8) Tile<TF, Eight>(w, scales, job->GroupBlockBytes, x, t, y, job->Rows, rowsHere);
        for (; t + 4 <= t1; t += 4) Tile<TF, Four>(w, scales, job->GroupBlockBytes, x, t, y, job->Rows, rowsHere);
        for (; t < t1; t++) Tile<TF, One>(w, scales, job->GroupBlockBytes, x, t, y, job->Rows, rowsHere);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> RowScales(ushort* scales) =>
        Avx2.GatherVector256(HalfTable.Pointer, Avx2.ConvertToVector256Int32(scales), 4);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Broadcast(sbyte* quants) => Vector256.Create(*(int*)quants).AsSByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(Vector256<float> v, float* y, int rowsHere)
    {
        if (rowsHere == PackedQuantMatrix.GroupRows) { v.Store(y); return; }
        for (var i = 0; i < rowsHere; i++) y[i] = v.GetElement(i);
    }

    /// <summary>y += Σ (stored·x − offset·Σx) · (row scale · token scale), for one block and one token's accumulator.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Scale(Vector256<float> f, Vector256<int> dot, Vector256<float> rowScales, Q8Rows x, long index) =>
        Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(dot - Vector256.Create(x.Sums[index])), rowScales * Vector256.Create(x.Scales[index]), f);

    /// <summary>
    /// The micro-kernel: 8 rows × <typeparamref name="TN"/> tokens (8, 4 or 1; the JIT drops the unused
    /// lanes). One weight vector feeds every token's <c>vpdpbusd</c>; separate accumulators per token
    /// keep enough independent chains in flight to hide the instruction's latency.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TF, TN>(byte* w, ushort* scales, int groupBlockBytes, Q8Rows x, int t, float* y, int yStride, int rowsHere)
        where TF : struct, IPackedFormat where TN : struct, ITokenCount
    {
        var blocks = x.Blocks;
        var stride = (long)blocks * 32;
        var q0 = x.Quants + t * stride;
        var q1 = q0 + stride;
        var q2 = q1 + stride;
        var q3 = q2 + stride;
        var q4 = q3 + stride;
        var q5 = q4 + stride;
        var q6 = q5 + stride;
        var q7 = q6 + stride;
        var f0 = Vector256<float>.Zero;
        var f1 = Vector256<float>.Zero;
        var f2 = Vector256<float>.Zero;
        var f3 = Vector256<float>.Zero;
        var f4 = Vector256<float>.Zero;
        var f5 = Vector256<float>.Zero;
        var f6 = Vector256<float>.Zero;
        var f7 = Vector256<float>.Zero;
        var n = TN.Count;
        for (var b = 0; b < blocks; b++)
        {
            var wb = w + (long)b * groupBlockBytes;
            // 16 blocks ahead: with few tokens the weights stream from memory faster than the prefetcher fetches them.
            var ahead = wb + 16 * groupBlockBytes;
            for (var line = 0; line < groupBlockBytes; line += 64) Sse.Prefetch0(ahead + line);
            var i0 = Vector256<int>.Zero;
            var i1 = Vector256<int>.Zero;
            var i2 = Vector256<int>.Zero;
            var i3 = Vector256<int>.Zero;
            var i4 = Vector256<int>.Zero;
            var i5 = Vector256<int>.Zero;
            var i6 = Vector256<int>.Zero;
            var i7 = Vector256<int>.Zero;
            var xo = b * 32;
            // The 8 chunks written out: constant offsets, no loop counter between the vpdpbusd.
            Chunk<TF, TN>(TF.Chunk(wb, 0), xo + TF.Offset(0), q0, q1, q2, q3, q4, q5, q6, q7, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5, ref i6, ref i7, first: true);
            Chunk<TF, TN>(TF.Chunk(wb, 1), xo + TF.Offset(1), q0, q1, q2, q3, q4, q5, q6, q7, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5, ref i6, ref i7, first: false);
            Chunk<TF, TN>(TF.Chunk(wb, 2), xo + TF.Offset(2), q0, q1, q2, q3, q4, q5, q6, q7, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5, ref i6, ref i7, first: true);
            Chunk<TF, TN>(TF.Chunk(wb, 3), xo + TF.Offset(3), q0, q1, q2, q3, q4, q5, q6, q7, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5, ref i6, ref i7, first: false);
            Chunk<TF, TN>(TF.Chunk(wb, 4), xo + TF.Offset(4), q0, q1, q2, q3, q4, q5, q6, q7, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5, ref i6, ref i7, first: true);
            Chunk<TF, TN>(TF.Chunk(wb, 5), xo + TF.Offset(5), q0, q1, q2, q3, q4, q5, q6, q7, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5, ref i6, ref i7, first: false);
            Chunk<TF, TN>(TF.Chunk(wb, 6), xo + TF.Offset(6), q0, q1, q2, q3, q4, q5, q6, q7, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5, ref i6, ref i7, first: true);
            Chunk<TF, TN>(TF.Chunk(wb, 7), xo + TF.Offset(7), q0, q1, q2, q3, q4, q5, q6, q7, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5, ref i6, ref i7, first: false);
            var ws = RowScales(scales + b * PackedQuantMatrix.GroupRows);
            var index = (long)t * blocks + b;
            if (n == 1)
            {
                f0 = Scale(f0, i0 + i1, ws, x, index);
                continue;
            }
            f0 = Scale(f0, i0, ws, x, index);
            f1 = Scale(f1, i1, ws, x, index + blocks);
            f2 = Scale(f2, i2, ws, x, index + 2 * blocks);
            f3 = Scale(f3, i3, ws, x, index + 3 * blocks);
            if (n == 8)
            {
                f4 = Scale(f4, i4, ws, x, index + 4 * blocks);
                f5 = Scale(f5, i5, ws, x, index + 5 * blocks);
                f6 = Scale(f6, i6, ws, x, index + 6 * blocks);
                f7 = Scale(f7, i7, ws, x, index + 7 * blocks);
            }
        }
        var yt = y + (long)t * yStride;
        Store(f0, yt, rowsHere);
        if (n == 1) return;
        Store(f1, yt + yStride, rowsHere);
        Store(f2, yt + 2L * yStride, rowsHere);
        Store(f3, yt + 3L * yStride, rowsHere);
        if (n == 4) return;
        Store(f4, yt + 4L * yStride, rowsHere);
        Store(f5, yt + 5L * yStride, rowsHere);
        Store(f6, yt + 6L * yStride, rowsHere);
        Store(f7, yt + 7L * yStride, rowsHere);
    }

    /// <summary>
    /// One chunk (4 quants of each of the 8 rows) into every token's accumulator. With one token, even
    /// and odd chunks go to two accumulators so consecutive <c>vpdpbusd</c> do not wait on each other.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Chunk<TF, TN>(Vector256<byte> v, int o, sbyte* q0, sbyte* q1, sbyte* q2, sbyte* q3, sbyte* q4, sbyte* q5, sbyte* q6, sbyte* q7,
        ref Vector256<int> i0, ref Vector256<int> i1, ref Vector256<int> i2, ref Vector256<int> i3,
        ref Vector256<int> i4, ref Vector256<int> i5, ref Vector256<int> i6, ref Vector256<int> i7, bool first)
        where TF : struct, IPackedFormat where TN : struct, ITokenCount
    {
        if (TN.Count == 1)
        {
            if (first) i0 = AvxVnni.MultiplyWideningAndAdd(i0, v, Broadcast(q0 + o));
            else i1 = AvxVnni.MultiplyWideningAndAdd(i1, v, Broadcast(q0 + o));
            return;
        }
        i0 = AvxVnni.MultiplyWideningAndAdd(i0, v, Broadcast(q0 + o));
        i1 = AvxVnni.MultiplyWideningAndAdd(i1, v, Broadcast(q1 + o));
        i2 = AvxVnni.MultiplyWideningAndAdd(i2, v, Broadcast(q2 + o));
        i3 = AvxVnni.MultiplyWideningAndAdd(i3, v, Broadcast(q3 + o));
        if (TN.Count == 8)
        {
            i4 = AvxVnni.MultiplyWideningAndAdd(i4, v, Broadcast(q4 + o));
            i5 = AvxVnni.MultiplyWideningAndAdd(i5, v, Broadcast(q5 + o));
            i6 = AvxVnni.MultiplyWideningAndAdd(i6, v, Broadcast(q6 + o));
            i7 = AvxVnni.MultiplyWideningAndAdd(i7, v, Broadcast(q7 + o));
        }
    }

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
        GroupVnni<Q4Packed>(job, g, t, t1);
        GroupVnni<Q4Packed>(job, g + 1, t, t1);
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
        for (var i = 0; i < rowsHere; i++) y[i] = v.GetElement(i);
    }

    private interface ITokenCount
    {
        static abstract int Count { get; }
    }

    private struct One : ITokenCount { public static int Count => 1; }
    private struct Four : ITokenCount { public static int Count => 4; }
    private struct Eight : ITokenCount { public static int Count => 8; }

    /// <summary>A packed group block as 8 chunks: chunk c holds 4 stored quants of each of the 8 rows.</summary>
    private interface IPackedFormat
    {
        /// <summary>Chunk c (0..7) as unsigned bytes.</summary>
        static abstract Vector256<byte> Chunk(byte* block, int c);

        /// <summary>Index within the 32-value block of the first of chunk c's 4 quants.</summary>
        static abstract int Offset(int c);
    }

    private struct Q8Packed : IPackedFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Chunk(byte* block, int c) => Vector256.Load(block + c * 32);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static int Offset(int c) => c * 4;
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
    }
}
