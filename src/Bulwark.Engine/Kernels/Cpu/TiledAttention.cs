using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// Causal attention of a chunk of prompt tokens (prefill) as small matrix products, flash-attention
/// style: up to 16 (token, query head) rows that share one KV head sit in the 16 lanes of a 512-bit
/// vector, and each key or value element is broadcast once to all of them. Scores for 8 positions
/// are 8 independent FMA chains over the head dimension, the softmax runs online per block of 8
/// positions (rescaled when a block raises a row's maximum), and the value sum accumulates in the
/// same transposed layout, so no dot product ends in a horizontal sum. Head by head
/// (<see cref="Attention.Attend"/>) reduces every position's dot product across lanes and reads each
/// key row once per query head.
/// <para>
/// A decode step is a chunk of one token: its tile is the query heads of one KV group (8 of 16
/// lanes in TinyLlama), so each key and value row is read once for the whole group, 8 positions
/// ahead of use (a KV head's rows are short runs far apart, which the hardware prefetcher misses).
/// </para>
/// <para>
/// Work items are (KV head, tile of 16 rows) pairs, rows ordered token by token and, within a
/// token, by the query heads of the group. Each row masks the positions after its own token.
/// The result equals <see cref="Reference.Attention"/> up to float rounding (the same terms,
/// summed in another order and rescaled per block).
/// </para>
/// </summary>
internal static unsafe class TiledAttention
{
    /// <summary>(token, head) rows per tile: the lanes of a 512-bit vector of floats.</summary>
    public const int Rows = 16;

    /// <summary>Largest head size the tiles take (their transposed query and output sit on the stack).</summary>
    public const int MaxHeadDim = 256;

    private const int Positions = 8;

    /// <summary>Whether the tiled kernel runs at <paramref name="isa"/> for heads of <paramref name="headDim"/>.</summary>
    public static bool CanRun(InstructionSet isa, int headDim) =>
        isa >= InstructionSet.Avx512 && Vector512.IsHardwareAccelerated && headDim is > 0 and <= MaxHeadDim;

    /// <summary>
    /// Whether one token alone (a decode step) is worth a tile: its rows are only its group's query heads,
    /// so with fewer than half the lanes used (groups below 8 heads) head by head is faster. Measured on
    /// a 12-head model without grouping: 1 of 16 lanes, and half of each decode step in the tiles.
    /// </summary>
    public static bool FillsForOneToken(int headCount, int kvHeadCount) => kvHeadCount > 0 && headCount / kvHeadCount >= Rows / 2;

    /// <summary>Work items for <paramref name="tokens"/> query tokens: KV heads × tiles of 16 rows each.</summary>
    public static int Items(int tokens, int headCount, int kvHeadCount) =>
        kvHeadCount * TilesPerKvHead(tokens, headCount / kvHeadCount);

    private static int TilesPerKvHead(int tokens, int group) => (tokens * group + Rows - 1) / Rows;

    /// <summary>
    /// Where a position's keys and values are: a contiguous cache ([position][kvHeads × headDim]) or a
    /// paged one (blocks of <see cref="BlockSize"/> positions, <see cref="BlockStride"/> floats apart,
    /// found through a block table).
    /// </summary>
    public readonly struct KvPlanes
    {
        public readonly float* Keys, Values;
        public readonly int* Table;
        public readonly int BlockSize;
        public readonly long BlockStride;

        /// <summary>A contiguous cache.</summary>
        public KvPlanes(float* keys, float* values)
        {
            Keys = keys;
            Values = values;
        }

        /// <summary>A paged cache: position p is in block <paramref name="table"/>[p / blockSize].</summary>
        public KvPlanes(float* keys, float* values, int* table, int blockSize, long blockStride)
        {
            if (blockSize < 1) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "a KV block holds at least one position");
            Keys = keys;
            Values = values;
            Table = table;
            BlockSize = blockSize;
            BlockStride = blockStride;
        }

        /// <summary>Floats from the plane's start to position p's row.</summary>
        public long Offset(int p, long kvLength) =>
            Table == null ? p * kvLength : Table[p / BlockSize] * BlockStride + p % BlockSize * kvLength;

        /// <summary>Whether positions [p, p + 8) are consecutive rows.</summary>
        public bool EightInARow(int p) => Table == null || p % BlockSize + Positions <= BlockSize;
    }

    /// <summary>As <see cref="Run(int, float*, float*, long, in KvPlanes, int, int, int, int, int)"/> over a contiguous cache.</summary>
    public static void Run(int item, float* query, float* output, long queryStride, float* keys, float* values,
        int start, int tokens, int headCount, int kvHeadCount, int headDim) =>
        Run(item, query, output, queryStride, new KvPlanes(keys, values), start, tokens, headCount, kvHeadCount, headDim);

    /// <summary>
    /// One work item. Token t of the chunk is at position <paramref name="start"/> + t; its query heads
    /// are at <paramref name="query"/> + t·<paramref name="queryStride"/>, its output likewise; the cache
    /// holds positions [0, start + tokens).
    /// </summary>
    [SkipLocalsInit]
    /// <param name="window">Sliding window: each row sees only its own position and the window − 1 before it; 0: every earlier position.</param>
    public static void Run(int item, float* query, float* output, long queryStride, in KvPlanes kv,
        int start, int tokens, int headCount, int kvHeadCount, int headDim, int window = 0)
    {
        if (headDim is <= 0 or > MaxHeadDim || kvHeadCount < 1 || headCount % kvHeadCount != 0 || tokens < 1 || start < 0 || window < 0)
            throw new ArgumentException($"tiled attention over {tokens} tokens of {headCount} heads in {kvHeadCount} KV groups of size {headDim} is not valid");
        var group = headCount / kvHeadCount;
        var tiles = TilesPerKvHead(tokens, group);
        var kvHead = item / tiles;
        var first = item % tiles * Rows;
        var count = Math.Min(Rows, tokens * group - first);
        long kvLength = kvHeadCount * headDim;
        var scale = 1f / MathF.Sqrt(headDim);

        // The rows' queries transposed (qt[d] holds element d of every row), pre-scaled; unused lanes
        // attend the first position visited only, so every lane's maximum is finite from the first block on.
        var qt = stackalloc float[headDim * Rows];
        var ot = stackalloc float[headDim * Rows];
        var limits = stackalloc int[Rows];
        var lowers = stackalloc int[Rows];
        new Span<float>(qt, headDim * Rows).Clear();
        new Span<float>(ot, headDim * Rows).Clear();
        var last = 0;
        // The first row's token comes first, so its window starts first.
        var from = window > 0 ? Math.Max(0, start + first / group - window + 1) : 0;
        for (var lane = 0; lane < Rows; lane++)
        {
            if (lane >= count)
            {
                limits[lane] = lowers[lane] = from;
                continue;
            }
            var row = first + lane;
            var t = row / group;
            var head = kvHead * group + row % group;
            limits[lane] = start + t;
            lowers[lane] = window > 0 ? Math.Max(0, start + t - window + 1) : 0;
            last = Math.Max(last, start + t);
            var q = query + t * queryStride + head * headDim;
            for (var d = 0; d < headDim; d++) qt[d * Rows + lane] = q[d] * scale;
        }

        var limit = Vector512.Load(limits);
        var lower = Vector512.Load(lowers);
        var max = Vector512.Create(float.NegativeInfinity);
        var sum = Vector512<float>.Zero;
        var positions = last + 1;
        var k = kv.Keys + kvHead * headDim;
        var v = kv.Values + kvHead * headDim;
        for (var p = from; p < positions;)
        {
            var offset = kv.Offset(p, kvLength);
            if (p + Positions <= positions && kv.EightInARow(p))
            {
                Block8(qt, ot, k + offset, v + offset, kvLength, headDim, p, limit, lower, ref max, ref sum);
                p += Positions;
            }
            else
            {
                Block1(qt, ot, k + offset, v + offset, headDim, p, limit, lower, ref max, ref sum);
                p++;
            }
        }

        var inverse = Vector512<float>.One / sum;
        for (var d = 0; d < headDim; d++) (Vector512.Load(ot + d * Rows) * inverse).Store(ot + d * Rows);
        for (var lane = 0; lane < count; lane++)
        {
            var row = first + lane;
            var o = output + row / group * queryStride + (kvHead * group + row % group) * headDim;
            for (var d = 0; d < headDim; d++) o[d] = ot[d * Rows + lane];
        }
    }

    /// <summary>Positions [p, p + 8): scores, online softmax step, value sum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block8(float* qt, float* ot, float* k, float* v, long stride, int headDim, int p, Vector512<int> limit,
        Vector512<int> lower, ref Vector512<float> max, ref Vector512<float> sum)
    {
        Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
        Ahead(k + Positions * stride, v + Positions * stride, stride, headDim);
        for (var d = 0; d < headDim; d++)
        {
            var q = Vector512.Load(qt + d * Rows);
            var kd = k + d;
            s0 = Vector512.FusedMultiplyAdd(q, Vector512.Create(kd[0]), s0);
            s1 = Vector512.FusedMultiplyAdd(q, Vector512.Create(kd[stride]), s1);
            s2 = Vector512.FusedMultiplyAdd(q, Vector512.Create(kd[2 * stride]), s2);
            s3 = Vector512.FusedMultiplyAdd(q, Vector512.Create(kd[3 * stride]), s3);
            s4 = Vector512.FusedMultiplyAdd(q, Vector512.Create(kd[4 * stride]), s4);
            s5 = Vector512.FusedMultiplyAdd(q, Vector512.Create(kd[5 * stride]), s5);
            s6 = Vector512.FusedMultiplyAdd(q, Vector512.Create(kd[6 * stride]), s6);
            s7 = Vector512.FusedMultiplyAdd(q, Vector512.Create(kd[7 * stride]), s7);
        }
        s0 = Mask(s0, p, limit, lower);
        s1 = Mask(s1, p + 1, limit, lower);
        s2 = Mask(s2, p + 2, limit, lower);
        s3 = Mask(s3, p + 3, limit, lower);
        s4 = Mask(s4, p + 4, limit, lower);
        s5 = Mask(s5, p + 5, limit, lower);
        s6 = Mask(s6, p + 6, limit, lower);
        s7 = Mask(s7, p + 7, limit, lower);
        var newMax = Vector512.Max(max, Vector512.Max(Vector512.Max(Vector512.Max(s0, s1), Vector512.Max(s2, s3)), Vector512.Max(Vector512.Max(s4, s5), Vector512.Max(s6, s7))));
        var shift = Finite(newMax);
        var keep = Vector512.Exp(max - shift);
        max = newMax;
        s0 = Vector512.Exp(s0 - shift);
        s1 = Vector512.Exp(s1 - shift);
        s2 = Vector512.Exp(s2 - shift);
        s3 = Vector512.Exp(s3 - shift);
        s4 = Vector512.Exp(s4 - shift);
        s5 = Vector512.Exp(s5 - shift);
        s6 = Vector512.Exp(s6 - shift);
        s7 = Vector512.Exp(s7 - shift);
        sum = sum * keep + ((s0 + s1) + (s2 + s3) + ((s4 + s5) + (s6 + s7)));
        for (var d = 0; d < headDim; d++)
        {
            var vd = v + d;
            var o = Vector512.Load(ot + d * Rows) * keep;
            o = Vector512.FusedMultiplyAdd(s0, Vector512.Create(vd[0]), o);
            o = Vector512.FusedMultiplyAdd(s1, Vector512.Create(vd[stride]), o);
            o = Vector512.FusedMultiplyAdd(s2, Vector512.Create(vd[2 * stride]), o);
            o = Vector512.FusedMultiplyAdd(s3, Vector512.Create(vd[3 * stride]), o);
            o = Vector512.FusedMultiplyAdd(s4, Vector512.Create(vd[4 * stride]), o);
            o = Vector512.FusedMultiplyAdd(s5, Vector512.Create(vd[5 * stride]), o);
            o = Vector512.FusedMultiplyAdd(s6, Vector512.Create(vd[6 * stride]), o);
            o = Vector512.FusedMultiplyAdd(s7, Vector512.Create(vd[7 * stride]), o);
            o.Store(ot + d * Rows);
        }
    }

    /// <summary>
    /// Requests the next 8 positions' keys and values: one KV head's rows are short runs far apart
    /// (kvHeads × headDim floats), which the hardware prefetcher does not follow.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Ahead(float* k, float* v, long stride, int headDim)
    {
        for (var i = 0; i < Positions; i++)
        for (var d = 0; d < headDim; d += 16)
        {
            Sse.Prefetch0(k + i * stride + d);
            Sse.Prefetch0(v + i * stride + d);
        }
    }

    /// <summary>Position p alone (the last fewer than 8).</summary>
    private static void Block1(float* qt, float* ot, float* k, float* v, int headDim, int p, Vector512<int> limit,
        Vector512<int> lower, ref Vector512<float> max, ref Vector512<float> sum)
    {
        var s = Vector512<float>.Zero;
        for (var d = 0; d < headDim; d++) s = Vector512.FusedMultiplyAdd(Vector512.Load(qt + d * Rows), Vector512.Create(k[d]), s);
        s = Mask(s, p, limit, lower);
        var newMax = Vector512.Max(max, s);
        var shift = Finite(newMax);
        var keep = Vector512.Exp(max - shift);
        max = newMax;
        s = Vector512.Exp(s - shift);
        sum = sum * keep + s;
        for (var d = 0; d < headDim; d++)
            Vector512.FusedMultiplyAdd(s, Vector512.Create(v[d]), Vector512.Load(ot + d * Rows) * keep).Store(ot + d * Rows);
    }

    /// <summary>
    /// The running maximum with −∞ lanes (a row whose window starts after every position so far) as 0, so
    /// their exponentials are 0 rather than exp(−∞ + ∞) = NaN.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Finite(Vector512<float> max) =>
        Vector512.ConditionalSelect(Vector512.Equals(max, Vector512.Create(float.NegativeInfinity)), Vector512<float>.Zero, max);

    /// <summary>−∞ in the lanes whose token comes before position p (causal mask) or whose window starts after it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Mask(Vector512<float> s, int p, Vector512<int> limit, Vector512<int> lower)
    {
        var at = Vector512.Create(p);
        var outside = Vector512.GreaterThan(at, limit) | Vector512.LessThan(at, lower);
        return Vector512.ConditionalSelect(outside.AsSingle(), Vector512.Create(float.NegativeInfinity), s);
    }
}
