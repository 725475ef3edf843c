using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// Y[tokens × rows] = X · Wᵀ over a <see cref="PackedQuantMatrix"/>: activations quantized to 8-bit
/// blocks with their sums, then work items of row groups, each walking every tile of tokens.
/// The VNNI micro-kernel computes 8 rows × up to 8 tokens; its scalar twin does the same arithmetic in
/// the same order. What differs per format (how a packed block is read, and Q4_0's 512-bit kernel)
/// is in Q8_0Kernels.cs and Q4_0Kernels.cs.
/// </summary>
public static unsafe partial class PackedMatMul
{
    /// <summary>Tokens per cache tile: 64 activation rows stay in L2 while a row group is walked over them.</summary>
    private const int TokenTile = 64;

    /// <summary>
    /// Whether a packed matrix runs its SIMD kernel at <paramref name="isa"/> (the scalar twin always can): with
    /// <c>vpdpbusd</c> where AVX-VNNI is there (<see cref="UsesVnni"/>), else with <c>vpmaddubsw</c>/<c>vpmaddwd</c> on AVX2.
    /// </summary>
    public static bool HasFastPath(InstructionSet isa) => isa >= InstructionSet.Avx2 && KernelIsa.IsSupported(isa);

    /// <summary>Whether the packed kernel at <paramref name="isa"/> uses AVX-VNNI's <c>vpdpbusd</c> (else it emulates it exactly).</summary>
    public static bool UsesVnni(InstructionSet isa) => isa >= InstructionSet.AvxVnni && AvxVnni.IsSupported;

    /// <summary>
    /// Whether a <paramref name="type"/> matrix is repacked at load to run at <paramref name="isa"/>: Q4_0 and Q5_0 wherever
    /// the packed kernel runs — without VNNI too the interleaved rows win, one activation load and one float step feeding
    /// 8 rows (Zen 4, one thread: Q4_0 GEMM 33 → 113 GMAC/s; docs/engine.md, "Legacy quants without VNNI") — and Q8_0 only
    /// with VNNI: emulated, its decode GEMV streamed less than the stored rows' (quiet Zen 4, a matrix larger than the caches,
    /// `bench/run kernels --types q8_0 --rows 32768 --tokens 1`: 1 thread 24.9 against 14.7 GB/s, 2 threads 39.7 against 24.6).
    /// </summary>
    public static bool Repacks(GgmlType type, InstructionSet isa) =>
        PackedQuantMatrix.CanPack(type, 32) && HasFastPath(isa) && (type != GgmlType.Q8_0 || UsesVnni(isa));

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
        var shared = new SharedItems { Work = &GroupChunk, A = &ja, B = &jb, C = &jc, ItemsA = ja.Items, ItemsB = jb.Items };
        pool.Run(&SharedItems.Item, &shared, ja.Items + jb.Items + (c is null ? 0 : jc.Items));
    }

    /// <summary>Whether two packed matrices can run from one quantization of the same input.</summary>
    public static bool CanShare(PackedQuantMatrix a, PackedQuantMatrix b) => a.Type == b.Type && a.Columns == b.Columns;

    private static void CheckIsa(InstructionSet isa)
    {
        if (isa != InstructionSet.Scalar && !HasFastPath(isa))
            throw new ArgumentOutOfRangeException(nameof(isa), isa, "the packed kernel runs on AVX2 or above, or as its scalar twin");
    }

    private static Job Part(PackedQuantMatrix w, float* y, int tokens, InstructionSet isa, WorkerPool pool)
    {
        // Enough items to balance the threads; each a run of groups whose weights are reused by all tokens.
        // The 512-bit Q4_0 kernel takes groups two at a time, so its runs are whole pairs.
        var wide = HasWidePath(w.Type, w.Columns, isa);
        var chunk = Math.Max(1, w.Groups / (pool.ThreadCount * 8));
        if (wide) chunk = Math.Max(2, chunk + (chunk & 1));
        var scalar = isa == InstructionSet.Scalar;
        var isQ8 = w.Type == GgmlType.Q8_0;
        var vnni = !scalar && UsesVnni(isa);
        return new Job
        {
            W = w.Quants, Scales = w.Scales, Type = w.Type, GroupBlockBytes = w.GroupBlockBytes,
            // Q8_0 without VNNI multiplies the signed quants back (w = stored ^ 0x80), so no offset·Σx is subtracted;
            // the integer per block is the same as vpdpbusd's on the stored bytes minus 128·Σx.
            Offset = isQ8 && !scalar && !vnni ? 0 : w.Offset, Vnni = vnni, FiniteScales = w.FiniteScales,
            Rows = w.Rows, Groups = w.Groups, Columns = w.Columns, Y = y, Tokens = tokens, Scalar = scalar,
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

    private struct Job
    {
        public byte* W;
        public ushort* Scales;
        public int Offset, GroupBlockBytes, Rows, Groups, Columns, Tokens, ChunkGroups, Items;
        public GgmlType Type;
        public bool Scalar;

        /// <summary>The micro-kernel uses <c>vpdpbusd</c>; else its exact AVX2 emulation.</summary>
        public bool Vnni;

        /// <summary>No scale is infinite or NaN: the kernels convert them with integer operations (<see cref="ConvertScales"/>).</summary>
        public bool FiniteScales;

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
                else if (job->Vnni) Group<WithVnni>(job, g, t0, t1);
                else Group<WithMadd>(job, g, t0, t1);
            }
        }
    }

    private static void Group<TK>(Job* job, int g, int t0, int t1) where TK : struct, IDotKind
    {
        if (job->Type == GgmlType.Q8_0) GroupVnni<Q8Packed, TK>(job, g, t0, t1);
        else if (job->Type == GgmlType.Q5_0) GroupVnni<Q5Packed, TK>(job, g, t0, t1);
        else GroupVnni<Q4Packed, TK>(job, g, t0, t1);
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
                    for (var i = 0; i < 32; i++) dot += PackedQuant(w, job->Type, lane, i) * xq[i];
                    dot -= x.Sums[(long)t * blocks + b];
                    sum = MathF.FusedMultiplyAdd(dot, HalfTable.ToSingle(job->Scales[index * PackedQuantMatrix.GroupRows + lane]) * x.Scales[(long)t * blocks + b], sum);
                }
                job->Y[(long)t * job->Rows + row] = sum;
            }
        }
    }

    /// <summary>Stored (unsigned) quant i of one lane in a packed group block.</summary>
    private static int PackedQuant(byte* w, GgmlType type, int lane, int i)
    {
        if (type == GgmlType.Q8_0) return w[((i / 4) * PackedQuantMatrix.GroupRows + lane) * 4 + i % 4];
        var j = i % 16;
        var b = w[((j / 4) * PackedQuantMatrix.GroupRows + lane) * 4 + j % 4];
        var nibble = i < 16 ? b & 0x0F : b >> 4;
        if (type != GgmlType.Q5_0) return nibble;
        return nibble | (((w[PackedQuantMatrix.FifthBitsAt + lane * 4 + i % 4] >> (i / 4)) & 1) << 4);
    }

    /// <summary>8 rows × 8 tokens per pass (then 4, then 1); the group's blocks are re-read from L1 for each pass.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GroupVnni<TF, TK>(Job* job, int g, int t0, int t1) where TF : struct, IPackedFormat where TK : struct, IDotKind
    {
        var x = job->Activations;
        var w = job->W + (long)g * x.Blocks * job->GroupBlockBytes;
        var scales = job->Scales + (long)g * x.Blocks * PackedQuantMatrix.GroupRows;
        var rowsHere = Math.Min(PackedQuantMatrix.GroupRows, job->Rows - g * PackedQuantMatrix.GroupRows);
        var y = job->Y + (long)g * PackedQuantMatrix.GroupRows;
        var t = t0;
        for (; t + 8 <= t1; t += 8) Tile<TF, Eight, TK>(w, scales, x, t, y, job->Rows, rowsHere, job->FiniteScales);
        for (; t + 4 <= t1; t += 4) Tile<TF, Four, TK>(w, scales, x, t, y, job->Rows, rowsHere, job->FiniteScales);
        for (; t < t1; t++) Tile<TF, One, TK>(w, scales, x, t, y, job->Rows, rowsHere, job->FiniteScales);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> RowScales(float* table, ushort* scales) =>
        Avx2.GatherVector256(table, Avx2.ConvertToVector256Int32(scales), 4);

    /// <summary>
    /// The 8 rows' f16 scales as floats without the table gather (which cost about as much as the rest of a decode
    /// block's work): sign, exponent and mantissa moved to a float's places read the half's value × 2^-112 — a float
    /// subnormal for a subnormal half, still exact — and × 2^112 is exact. Wrong for infinities and NaNs only, which
    /// <see cref="PackedQuantMatrix.FiniteScales"/> rules out.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> ConvertScales(ushort* scales)
    {
        var h = Avx2.ConvertToVector256Int32(scales);
        var bits = Vector256.ShiftLeft(h & Vector256.Create(0x7FFF), 13) | Vector256.ShiftLeft(h & Vector256.Create(0x8000), 16);
        return bits.AsSingle() * Vector256.Create(Two112Bits).AsSingle();
    }

    /// <summary>
    /// 2^112 as float bits: a constant, not a static field — the kernels are jitted fully optimized before the class is
    /// initialized, and reading a static there cost a class-initialization check (and a helper call that spilled every
    /// accumulator to the stack) in every block.
    /// </summary>
    private const int Two112Bits = (127 + 112) << 23;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Broadcast(sbyte* quants) => Vector256.Create(*(int*)quants).AsSByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(Vector256<float> v, float* y, int rowsHere)
    {
        if (rowsHere == PackedQuantMatrix.GroupRows) { v.Store(y); return; }
        // A masked store, not GetElement(i) with a variable i: that gave the accumulators a stack home, and the JIT
        // stored every one of them there in every block of the tile's loop. Lanes masked off are not touched.
        Avx.MaskStore(y, Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(rowsHere)).AsSingle(), v);
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
    private static void Tile<TF, TN, TK>(byte* w, ushort* scales, Q8Rows x, int t, float* y, int yStride, int rowsHere, bool finiteScales)
        where TF : struct, IPackedFormat where TN : struct, ITokenCount where TK : struct, IDotKind
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
        // Read once, before the loop: this method is jitted fully optimized, maybe before HalfTable's class is initialized,
        // and a static read in the loop then kept a class-initialization helper call there, which spilled every
        // accumulator to the stack in every block.
        var table = HalfTable.Pointer;
        for (var b = 0; b < blocks; b++)
        {
            var wb = w + (long)b * TF.GroupBlockBytes;
            // 16 blocks ahead: with few tokens the weights stream from memory faster than the prefetcher fetches them.
            var ahead = wb + 16 * TF.GroupBlockBytes;
            for (var line = 0; line < TF.GroupBlockBytes; line += 64) Sse.Prefetch0(ahead + line);
            var i0 = Vector256<int>.Zero;
            var i1 = Vector256<int>.Zero;
            var i2 = Vector256<int>.Zero;
            var i3 = Vector256<int>.Zero;
            var i4 = Vector256<int>.Zero;
            var i5 = Vector256<int>.Zero;
            var i6 = Vector256<int>.Zero;
            var i7 = Vector256<int>.Zero;
            // 64-bit, so each chunk's activation address is one addressing mode with a constant displacement.
            var xo = (long)b * 32;
            if (!TK.Vnni)
                EmulatedBlock<TF, TN>(wb, xo, q0, q1, q2, q3, q4, q5, q6, q7, out i0, out i1, out i2, out i3, out i4, out i5, out i6, out i7);
            else
            {
            // The 8 chunks written out: constant offsets, no loop counter between the vpdpbusd.
            Chunk<TF, TN>(TF.Chunk(wb, 0), xo + TF.Offset(0), q0, q1, q2, q3, q4, q5, q6, q7, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5, ref i6, ref i7, first: true);
            Chunk<TF, TN>(TF.Chunk(wb, 1), xo + TF.Offset(1), q0, q1, q2, q3, q4, q5, q6, q7, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5, ref i6, ref i7, first: false);
            Chunk<TF, TN>(TF.Chunk(wb, 2), xo + TF.Offset(2), q0, q1, q2, q3, q4, q5, q6, q7, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5, ref i6, ref i7, first: true);
            Chunk<TF, TN>(TF.Chunk(wb, 3), xo + TF.Offset(3), q0, q1, q2, q3, q4, q5, q6, q7, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5, ref i6, ref i7, first: false);
            Chunk<TF, TN>(TF.Chunk(wb, 4), xo + TF.Offset(4), q0, q1, q2, q3, q4, q5, q6, q7, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5, ref i6, ref i7, first: true);
            Chunk<TF, TN>(TF.Chunk(wb, 5), xo + TF.Offset(5), q0, q1, q2, q3, q4, q5, q6, q7, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5, ref i6, ref i7, first: false);
            Chunk<TF, TN>(TF.Chunk(wb, 6), xo + TF.Offset(6), q0, q1, q2, q3, q4, q5, q6, q7, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5, ref i6, ref i7, first: true);
            Chunk<TF, TN>(TF.Chunk(wb, 7), xo + TF.Offset(7), q0, q1, q2, q3, q4, q5, q6, q7, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5, ref i6, ref i7, first: false);
            }
            var ws = finiteScales ? ConvertScales(scales + b * PackedQuantMatrix.GroupRows) : RowScales(table, scales + b * PackedQuantMatrix.GroupRows);
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
    private static void Chunk<TF, TN>(Vector256<byte> v, long o, sbyte* q0, sbyte* q1, sbyte* q2, sbyte* q3, sbyte* q4, sbyte* q5, sbyte* q6, sbyte* q7,
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

    /// <summary>Whether the micro-kernel's 4-quant dot products are <c>vpdpbusd</c> (AVX-VNNI) or its exact AVX2 emulation.</summary>
    private interface IDotKind
    {
        static abstract bool Vnni { get; }
    }

    private struct WithVnni : IDotKind { public static bool Vnni => true; }
    private struct WithMadd : IDotKind { public static bool Vnni => false; }

    /// <summary>
    /// One group block without VNNI, exactly the integers <c>vpdpbusd</c> would give: per chunk and token a <c>vpmaddubsw</c>
    /// (adjacent pairs of products summed to 16 bits), <see cref="IPackedFormat.ChunksIn16Bits"/> chunks added in 16 bits,
    /// then <c>vpmaddwd</c> by 1 to 32. Q4_0's nibbles: 16 products of at most 15 × 127 a lane, 30480; Q5_0's 5-bit quants:
    /// 4 chunks, 8 products of at most 31 × 127, 31496; Q8_0's signed quants (stored ^ 0x80) as ggml's mul_sum_i8_pairs,
    /// |w| × (x with w's sign), one chunk, a pair at most 2 × 128 × 127 = 32512 — so nothing saturates. Q8_0 then sums
    /// w·x itself, not (w + 128)·x: its job's offset is 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void EmulatedBlock<TF, TN>(byte* wb, long xo, sbyte* q0, sbyte* q1, sbyte* q2, sbyte* q3, sbyte* q4, sbyte* q5, sbyte* q6, sbyte* q7,
        out Vector256<int> i0, out Vector256<int> i1, out Vector256<int> i2, out Vector256<int> i3,
        out Vector256<int> i4, out Vector256<int> i5, out Vector256<int> i6, out Vector256<int> i7)
        where TF : struct, IPackedFormat where TN : struct, ITokenCount
    {
        var n = TN.Count;
        i0 = i1 = i2 = i3 = i4 = i5 = i6 = i7 = default;
        Vector256<short> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
        var one = Vector256.Create((short)1);
        for (var c = 0; c < 8; c++)
        {
            var v = TF.Chunk(wb, c);
            var ws = (v ^ Vector256.Create((byte)0x80)).AsSByte();
            var a = TF.Signed ? Avx2.Abs(ws) : v;
            var o = xo + TF.Offset(c);
            s0 += Pairs<TF>(a, ws, q0 + o);
            if (n >= 4)
            {
                s1 += Pairs<TF>(a, ws, q1 + o);
                s2 += Pairs<TF>(a, ws, q2 + o);
                s3 += Pairs<TF>(a, ws, q3 + o);
            }
            if (n == 8)
            {
                s4 += Pairs<TF>(a, ws, q4 + o);
                s5 += Pairs<TF>(a, ws, q5 + o);
                s6 += Pairs<TF>(a, ws, q6 + o);
                s7 += Pairs<TF>(a, ws, q7 + o);
            }
            if ((c + 1) % TF.ChunksIn16Bits != 0) continue;
            i0 += Avx2.MultiplyAddAdjacent(s0, one);
            s0 = default;
            if (n >= 4)
            {
                i1 += Avx2.MultiplyAddAdjacent(s1, one);
                i2 += Avx2.MultiplyAddAdjacent(s2, one);
                i3 += Avx2.MultiplyAddAdjacent(s3, one);
                s1 = s2 = s3 = default;
            }
            if (n == 8)
            {
                i4 += Avx2.MultiplyAddAdjacent(s4, one);
                i5 += Avx2.MultiplyAddAdjacent(s5, one);
                i6 += Avx2.MultiplyAddAdjacent(s6, one);
                i7 += Avx2.MultiplyAddAdjacent(s7, one);
                s4 = s5 = s6 = s7 = default;
            }
        }
    }

    /// <summary>One chunk's products for one token, adjacent pairs summed to 16 bits (signed formats: |w| × x·sign(w)).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Pairs<TF>(Vector256<byte> a, Vector256<sbyte> ws, sbyte* x) where TF : struct, IPackedFormat =>
        Avx2.MultiplyAddAdjacent(a, TF.Signed ? Avx2.Sign(Broadcast(x), ws) : Broadcast(x));

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

        /// <summary>Stored bytes are w + 128 of signed quants (Q8_0): the AVX2 emulation multiplies w itself, by sign.</summary>
        static virtual bool Signed => false;

        /// <summary>Chunks whose <c>vpmaddubsw</c> pairs the AVX2 emulation may add in 16 bits without saturating.</summary>
        static abstract int ChunksIn16Bits { get; }

        /// <summary>Bytes of one group block (<see cref="PackedQuantMatrix.GroupBlockBytes"/>), a constant for the prefetch.</summary>
        static abstract int GroupBlockBytes { get; }
    }
}
