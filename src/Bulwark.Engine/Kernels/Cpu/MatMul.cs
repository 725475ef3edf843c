using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// Y[tokens × rows] = X[tokens × columns] · Wᵀ on the worker pool. Quantized weights first turn the
/// activation rows into 8-bit blocks (once, shared by all threads); then each work item takes a
/// chunk of weight rows and walks it over tiles of tokens, so a chunk's weights stay in cache while
/// every token of the tile uses them (GEMM), and a decode step (1 token) is a plain GEMV.
/// </summary>
public static unsafe class MatMul
{
    /// <summary>Tokens per tile: 64 rows of 8-bit activations (a few hundred KB at most) stay in L2.</summary>
    private const int TokenTile = 64;

    public static bool IsSupported(GgmlType type) => QuantizedKernels.Handles(type) || FloatKernels.Handles(type) || KQuantKernels.Handles(type);

    /// <summary>What <paramref name="type"/>'s matmul runs on at <paramref name="isa"/>, for <c>bulwark info</c>.</summary>
    public static string Describe(GgmlType type, InstructionSet isa)
    {
        if (KQuantKernels.Handles(type)) return $"{KQuantKernels.Describe(isa)} against Q8_K activations";
        if (QuantizedKernels.Handles(type))
            return PackedMatMul.Repacks(type, isa)
                ? PackedMatMul.UsesVnni(isa)
                    ? "repacked at load, AVX-VNNI vpdpbusd int8 against Q8_0 activations"
                    : $"repacked at load, {(PackedMatMul.HasWidePath(type, 256, isa) ? "AVX-512 BW (8-token tiles) and " : "")}AVX2 vpmaddubsw int8 against Q8_0 activations"
                : $"{QuantizedKernels.Describe(isa)} int8 against Q8_0 activations";
        if (FloatKernels.Handles(type)) return $"{isa} float32 FMA";
        return "not supported";
    }

    /// <param name="finiteHalves">
    /// F16 weights known to hold no infinity or NaN (<see cref="HalfKernels.AllFinite(ushort*, long, WorkerPool)"/>):
    /// they may run through <see cref="F16ScaledRow"/>, which gives the same bits for 3 operations per
    /// 16 weights instead of 13.
    /// </param>
    public static void Apply(GgmlType type, byte* weights, long rowBytes, int rows, int columns,
        float* x, float* y, int tokens, InstructionSet isa, WorkerPool pool, bool finiteHalves = false)
    {
        CheckIsa(isa);
        if (tokens <= 0 || rows <= 0) return;
        var job = Prepare(new Operand(type, weights, rowBytes, rows, y, finiteHalves), columns, x, tokens, isa, pool);
        pool.Run(&RowChunkItem, &job, job.Items);
    }

    /// <summary>One weight matrix of <see cref="ApplyShared"/> and where its output goes.</summary>
    public readonly struct Operand(GgmlType type, byte* weights, long rowBytes, int rows, float* y, bool finiteHalves = false)
    {
        public GgmlType Type { get; } = type;
        public byte* Weights { get; } = weights;
        public long RowBytes { get; } = rowBytes;
        public int Rows { get; } = rows;
        public float* Y { get; } = y;
        public bool FiniteHalves { get; } = finiteHalves;
    }

    /// <summary>Whether two matrices can share one preparation of the input: same type and the same half check.</summary>
    public static bool CanShare(in Operand a, in Operand b) => a.Type == b.Type && a.FiniteHalves == b.FiniteHalves;

    /// <summary>
    /// Two or three matrices of <paramref name="columns"/> columns over the same input (Q/K/V, gate/up):
    /// the input is prepared once (quantized, or scaled for F16) and one dispatch of the worker pool covers
    /// every matrix's row chunks, instead of one each. Each matrix's rows get exactly the arithmetic of
    /// <see cref="Apply"/>, so the results equal separate calls bit for bit. <paramref name="c"/> may be null.
    /// </summary>
    public static void ApplyShared(float* x, int columns, int tokens, InstructionSet isa, WorkerPool pool, in Operand a, in Operand b, Operand? c) =>
        Shared(x, null, columns, tokens, isa, pool, a, b, c);

    /// <summary>An RMSNorm of the input rows: <see cref="VectorOps.RmsNorm"/> of each row of <see cref="Input"/> by <see cref="Weight"/>.</summary>
    public readonly struct RowNorm(float* input, float* weight, float epsilon)
    {
        public float* Input { get; } = input;
        public float* Weight { get; } = weight;
        public float Epsilon { get; } = epsilon;
    }

    /// <summary>
    /// <paramref name="normed"/>[t] = RMSNorm(<paramref name="norm"/>'s input row t), then <see cref="ApplyShared"/> on
    /// <paramref name="normed"/>: bit for bit the norm followed by that call. Where the matrices take 8-bit activations
    /// the norm is fused into their quantization: one pass per token on the worker pool that norms the row and
    /// quantizes it while it is in L1, instead of every row normed on the caller's thread and read again.
    /// </summary>
    public static void ApplySharedNormed(in RowNorm norm, float* normed, int columns, int tokens, InstructionSet isa, WorkerPool pool,
        in Operand a, in Operand b, Operand? c)
    {
        var n = norm;
        Shared(normed, &n, columns, tokens, isa, pool, a, b, c);
    }

    private static void Shared(float* x, RowNorm* norm, int columns, int tokens, InstructionSet isa, WorkerPool pool, in Operand a, in Operand b, Operand? c)
    {
        CheckIsa(isa);
        if (!CanShare(a, b) || (c is { } oc && !CanShare(a, oc)))
            throw new ArgumentException("shared matrices must have the same type and half check");
        if (tokens <= 0) return;
        var ja = Prepare(a, columns, x, tokens, isa, pool, norm);
        var jb = Part(ja, b, pool);
        var jc = c is { } third ? Part(ja, third, pool) : default;
        var shared = new SharedItems { Work = &RowChunkItem, A = &ja, B = &jb, C = &jc, ItemsA = ja.Items, ItemsB = jb.Items };
        pool.Run(&SharedItems.Item, &shared, ja.Items + jb.Items + jc.Items);
    }

    private static void CheckIsa(InstructionSet isa)
    {
        if (!KernelIsa.IsSupported(isa))
            throw new ArgumentOutOfRangeException(nameof(isa), isa, $"this CPU supports up to {KernelIsa.Detected}");
    }

    /// <summary>Another matrix's job over <paramref name="prepared"/>'s input (its activations already quantized or scaled).</summary>
    private static Job Part(Job prepared, in Operand w, WorkerPool pool)
    {
        var job = prepared;
        job.Weights = w.Weights;
        job.RowBytes = w.RowBytes;
        job.Rows = w.Rows;
        job.Y = w.Y;
        Chunk(ref job, pool);
        return job;
    }

    /// <summary>Enough chunks to balance the threads, few enough that each covers a useful run of rows.</summary>
    private static void Chunk(ref Job job, WorkerPool pool)
    {
        job.ChunkRows = Math.Max(4, job.Rows / (pool.ThreadCount * 8));
        job.Items = job.Rows <= 0 ? 0 : (job.Rows + job.ChunkRows - 1) / job.ChunkRows;
    }

    /// <summary>The job of one matrix with its input prepared: quantized to 8-bit blocks, scaled for F16, or as it is.</summary>
    /// <param name="norm">When set, <paramref name="x"/> is first written with the norm of its input rows: fused into
    /// the quantization for 8-bit activations, row by row on the caller's thread otherwise.</param>
    private static Job Prepare(in Operand w, int columns, float* x, int tokens, InstructionSet isa, WorkerPool pool, RowNorm* norm = null)
    {
        var type = w.Type;
        var finiteHalves = w.FiniteHalves;
        var job = new Job
        {
            Type = type,
            Isa = isa,
            Weights = w.Weights,
            RowBytes = w.RowBytes,
            Rows = w.Rows,
            Columns = columns,
            X = x,
            Y = w.Y,
            Tokens = tokens,
            Norm = norm,
            FiniteHalves = type == GgmlType.F16 && finiteHalves,
        };
        if (norm != null && !QuantizedKernels.Handles(type) && !KQuantKernels.Handles(type))
        {
            NormRows(&job, 0, tokens);
            job.Norm = null;
        }
        if (QuantizedKernels.Handles(type))
        {
            job.Activations = Q8Activations.ForThread(tokens, columns).Rows;
            if (tokens >= 8) pool.Run(&QuantizeItem, &job, tokens);
            else Quantize(&job, 0, tokens);
        }
        else if (KQuantKernels.Handles(type))
        {
            job.KActivations = Q8KActivations.ForThread(tokens, columns).Rows;
            if (tokens >= 8) pool.Run(&QuantizeKItem, &job, tokens);
            else
            {
                NormRows(&job, 0, tokens);
                job.KActivations.Quantize(x, 0, tokens, isa);
            }
        }
        else if (type == GgmlType.F16 && finiteHalves && isa != InstructionSet.Scalar && tokens < WidenFrom)
        {
            // Decode and small batches, where the conversion is paid per token: scaled once here on the
            // caller's thread, read by every worker. From WidenFrom tokens rows are widened exactly once per
            // call instead (a cost shared by all tokens), so the F32 kernel never multiplies the subnormal
            // floats that subnormal halves become here, which some CPUs slow down with microcode assists.
            var scaled = HalfKernels.ScaledScratch((long)tokens * columns);
            if (HalfKernels.TryScale(x, (long)tokens * columns, scaled))
            {
                job.X = scaled;
                job.ScaledHalves = true;
            }
        }
        else if (!FloatKernels.Handles(type))
        {
            throw new NotSupportedException($"no matmul kernel for weight type {type}");
        }
        job.Norm = null; // X holds the normed rows now; the caller's norm is not read again
        Chunk(ref job, pool);
        return job;
    }

    private struct Job
    {
        public GgmlType Type;
        public InstructionSet Isa;
        public byte* Weights;
        public long RowBytes;
        public int Rows, Columns, Tokens, ChunkRows, Items;
        public float* X, Y;

        /// <summary>F16 weights through <see cref="F16ScaledRow"/>; <see cref="X"/> is then the activations times 2^112.</summary>
        public bool ScaledHalves;

        /// <summary>F16 weights with no infinity or NaN: widened with <see cref="FloatKernels.WidenFiniteHalves"/>.</summary>
        public bool FiniteHalves;
        public Q8Rows Activations;
        public Q8KRows KActivations;

        /// <summary>The norm <see cref="X"/>'s rows are made by as they are quantized; null when X is the input as it is.</summary>
        public RowNorm* Norm;
    }

    /// <summary>Rows [first, first + count) of <see cref="Job.X"/> = the norm of its input rows, when the job has one.</summary>
    private static void NormRows(Job* job, int first, int count)
    {
        var norm = job->Norm;
        if (norm == null) return;
        var columns = job->Columns;
        var weight = new ReadOnlySpan<float>(norm->Weight, columns);
        for (var t = first; t < first + count; t++)
            VectorOps.RmsNorm(new ReadOnlySpan<float>(norm->Input + (long)t * columns, columns), weight, norm->Epsilon, new Span<float>(job->X + (long)t * columns, columns));
    }

    private static void QuantizeKItem(void* context, int token)
    {
        var job = (Job*)context;
        NormRows(job, token, 1);
        job->KActivations.Quantize(job->X, token, 1, job->Isa);
    }

    private static void QuantizeItem(void* context, int token) => Quantize((Job*)context, token, 1);

    /// <summary>Q4_1/Q5_1 multiply ggml's Q8_1 activations: Q8_0's quants and each block's s = d·Σq, for their m·Σx term.</summary>
    private static void Quantize(Job* job, int first, int count)
    {
        NormRows(job, first, count);
        if (QuantizedKernels.HasMin(job->Type)) job->Activations.QuantizeQ8_1(job->X, first, count, job->Isa);
        else job->Activations.Quantize(job->X, first, count, job->Isa);
    }

    private static void RowChunkItem(void* context, int item)
    {
        var job = (Job*)context;
        var r0 = item * job->ChunkRows;
        var r1 = Math.Min(job->Rows, r0 + job->ChunkRows);
        if (job->Type is GgmlType.F16 or GgmlType.BF16 && job->Tokens >= WidenFrom && job->Isa != InstructionSet.Scalar)
        {
            WidenedRows(job, r0, r1);
            return;
        }
        for (var t0 = 0; t0 < job->Tokens; t0 += TokenTile)
        {
            var t1 = Math.Min(job->Tokens, t0 + TokenTile);
            if (job->KActivations.Quants != null)
                KQuantKernels.Tile(job->Type, job->Isa, job->Weights, job->RowBytes, r0, r1, job->KActivations, t0, t1, job->Y, job->Rows);
            else if (job->Activations.Quants != null)
                QuantizedKernels.Tile(job->Type, job->Isa, job->Weights, job->RowBytes, r0, r1, job->Activations, t0, t1, job->Y, job->Rows);
            else if (job->ScaledHalves)
                FloatKernels.TileScaledHalf(job->Isa, job->Weights, job->RowBytes, job->Columns, r0, r1, job->X, t0, t1, job->Y, job->Rows);
            else
                FloatKernels.Tile(job->Type, job->Isa, job->Weights, job->RowBytes, job->Columns, r0, r1, job->X, t0, t1, job->Y, job->Rows);
        }
    }

    /// <summary>Tokens from which F16/BF16 rows are widened once per call rather than once per 4 tokens.</summary>
    public const int WidenFrom = 8;

    /// <summary>Rows widened at a time: 16 rows of float32 (128 KiB at 2048 columns) stay in L2 while every token passes.</summary>
    private const int WidenRows = 16;

    /// <summary>
    /// F16/BF16 weights with many tokens: each run of rows is widened to float32 once (the kernels' own
    /// <see cref="F16Row"/>/<see cref="BF16Row"/> conversion, exact; finite F16 rows the same values in 4
    /// operations per 16 halves with <see cref="FloatKernels.WidenFiniteHalves"/>) and then multiplied by every tile of
    /// tokens with the F32 kernel. Widening per 4 tokens cost about three times the FMAs; the values and
    /// the FMA order are the same, so the result equals the per-tile conversion bit for bit.
    /// </summary>
    private static void WidenedRows(Job* job, int r0, int r1)
    {
        var columns = job->Columns;
        var length = WidenRows * columns;
        var scratch = _rowScratch is { } s && s.Length >= length ? s : (_rowScratch = new float[length]);
        fixed (float* rows = scratch)
        {
            for (var rb = r0; rb < r1; rb += WidenRows)
            {
                var n = Math.Min(WidenRows, r1 - rb);
                for (var r = 0; r < n; r++)
                {
                    var row = job->Weights + (rb + r) * job->RowBytes;
                    if (job->FiniteHalves) FloatKernels.WidenFiniteHalves(row, columns, rows + (long)r * columns);
                    else FloatKernels.Widen(job->Type, row, columns, rows + (long)r * columns);
                }
                for (var t0 = 0; t0 < job->Tokens; t0 += TokenTile)
                    FloatKernels.Tile(GgmlType.F32, job->Isa, (byte*)rows, columns * 4L, columns, 0, n, job->X, t0, Math.Min(job->Tokens, t0 + TokenTile), job->Y + rb, job->Rows);
            }
        }
    }

    [ThreadStatic] private static float[]? _rowScratch;
}
