using System.Runtime.InteropServices;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Memory;

namespace Bulwark.Engine.Model.Weights;

/// <summary>
/// A row-major [Rows × Columns] weight matrix in native memory (usually the model file's memory
/// map) in its stored type. Every matmul in the model goes through <see cref="MatVec"/> and
/// <see cref="MatMul"/>: the single place where faster kernels are swapped in.
/// </summary>
public sealed unsafe class WeightMatrix : IDisposable
{
    /// <summary>Native memory this matrix allocated itself (see <see cref="Quantize"/>); null for a view of a mapped file.</summary>
    private byte* _owned;
    private bool _freed;

    /// <summary>Set by <see cref="ReadRowsFromFile"/>: row lookups read the file instead of the mapping.</summary>
    private Microsoft.Win32.SafeHandles.SafeFileHandle? _rowFile;
    private long _rowFileOffset;

    /// <summary>The weights repacked for the VNNI kernel (see <see cref="PrepareForKernels"/>); null when not packed.</summary>
    private PackedQuantMatrix? _packed;

    public WeightMatrix(string name, GgmlType type, int rows, int columns, byte* data)
    {
        if (!Dequantize.IsSupported(type))
            throw new NotSupportedException($"{name}: weight type {type} is not supported (supported: {Dequantize.SupportedList})");
        Name = name;
        Type = type;
        Rows = rows;
        Columns = columns;
        RowBytes = GgmlTypes.ByteSize(type, columns);
        Data = data;
    }

    /// <summary>
    /// A matrix in native memory from <see cref="AnonymousPages.Allocate"/> that it owns and frees (weights repacked at
    /// load). With <paramref name="inputOrder"/>, stored column j holds input inputOrder[j] (see <see cref="InputOrder"/>).
    /// </summary>
    internal static WeightMatrix Owning(string name, GgmlType type, int rows, int columns, byte* data, int[]? inputOrder = null)
    {
        if (inputOrder is not null && inputOrder.Length != columns)
            throw new ArgumentException($"{name}: the input order needs {columns} entries; got {inputOrder.Length}", nameof(inputOrder));
        return new WeightMatrix(name, type, rows, columns, data) { _owned = data, InputOrder = inputOrder };
    }

    /// <summary>
    /// Null when stored column j multiplies input j. Otherwise stored column j multiplies input InputOrder[j] (GPTQ's
    /// act order, its inputs sorted by group at load): every multiply first gathers its input into that order.
    /// Rows read through <see cref="DequantizeRow"/> come back in input order; <see cref="StoredRow"/> gives the stored one.
    /// </summary>
    internal int[]? InputOrder { get; private init; }

    public string Name { get; }
    public GgmlType Type { get; }
    public int Rows { get; }
    public int Columns { get; }
    public long RowBytes { get; }

    /// <summary>
    /// First byte of row 0; rows follow each other <see cref="RowBytes"/> apart. Null once a matrix
    /// that owned its rows (a copy quantized at load) has been packed: the packed copy is then the
    /// only one (see <see cref="StoredRow"/>).
    /// </summary>
    public byte* Data { get; private set; }

    /// <summary><see cref="Data"/> as a number, for tests that check where rows live (views of one mapped tensor).</summary>
    internal nint Address => (nint)Data;

    /// <summary>y[Rows] = W · x[Columns].</summary>
    public void MatVec(ReadOnlySpan<float> x, Span<float> y) => MatMul(x, y, 1);

    /// <summary>
    /// Y[n × Rows] = X[n × Columns] · Wᵀ, one input row per token, on <see cref="WorkerPool.Shared"/>
    /// with the best <see cref="KernelIsa.Active"/> kernels. Quantized weights multiply 8-bit
    /// quantized activations (as llama.cpp does); float weights use float32 FMA.
    /// </summary>
    public void MatMul(ReadOnlySpan<float> x, Span<float> y, int tokens)
    {
        Check(x, y, tokens);
        MatMul(x, y, tokens, KernelIsa.Active);
    }

    private void Check(ReadOnlySpan<float> x, Span<float> y, int tokens)
    {
        ObjectDisposedException.ThrowIf(_freed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        if (x.Length < (long)tokens * Columns)
            throw new ArgumentException($"{Name}: input needs {tokens} × {Columns} floats; got {x.Length}", nameof(x));
        if (y.Length < (long)tokens * Rows)
            throw new ArgumentException($"{Name}: output needs {tokens} × {Rows} floats; got {y.Length}", nameof(y));
    }

    /// <summary>
    /// Y_a = X·Aᵀ and Y_b = X·Bᵀ (and Y_c = X·Cᵀ when <paramref name="c"/> is given) over the same input:
    /// Q/K/V, gate/up. When all are packed alike the input is quantized once and one pool dispatch
    /// covers all of them; otherwise they run one after another. Results equal separate calls.
    /// </summary>
    public static void MatMulShared(ReadOnlySpan<float> x, int tokens, WeightMatrix a, Span<float> ya, WeightMatrix b, Span<float> yb,
        WeightMatrix? c = null, Span<float> yc = default)
    {
        a.Check(x, ya, tokens);
        b.Check(x, yb, tokens);
        c?.Check(x, yc, tokens);
        var isa = KernelIsa.Active;
        if (a.InputOrder == null && a._packed is { } pa && b._packed is { } pb && PackedMatMul.HasFastPath(isa) && PackedMatMul.CanShare(pa, pb)
            && (c is null || (c._packed is { } pc && PackedMatMul.CanShare(pa, pc))))
        {
            fixed (float* px = x)
            fixed (float* pya = ya)
            fixed (float* pyb = yb)
            fixed (float* pyc = yc)
                PackedMatMul.ApplyShared(px, tokens, pa, pya, pb, pyb, c?._packed, pyc, isa, WorkerPool.Shared);
            return;
        }
        if (a.SharesUnpacked(b, isa) && (c is null || a.SharesUnpacked(c, isa)))
        {
            // Perf: one pool dispatch instead of two or three, and the input prepared once; a decode step of a
            // small model is short enough that each dispatch's wake-up and wait shows.
            fixed (float* px = x)
            fixed (float* pya = ya)
            fixed (float* pyb = yb)
            fixed (float* pyc = yc)
                Kernels.Cpu.MatMul.ApplyShared(px, a.Columns, tokens, isa, WorkerPool.Shared, a.Operand(pya), b.Operand(pyb), c?.Operand(pyc));
            return;
        }
        a.MatMul(x, ya, tokens, isa);
        b.MatMul(x, yb, tokens, isa);
        c?.MatMul(x, yc, tokens, isa);
    }

    /// <summary>
    /// <paramref name="normed"/> = RMSNorm(<paramref name="hidden"/>) row by row (<see cref="VectorOps.RmsNorm"/>), then
    /// <see cref="MatMulShared"/> over it: the same bits as the two in turn. Matrices that run on their stored rows with
    /// 8-bit activations (K-quants, the legacy quants not repacked) norm and quantize each row in one pass on the
    /// worker pool (<see cref="Kernels.Cpu.MatMul.ApplySharedNormed"/>); the others norm first on this thread.
    /// </summary>
    public static void MatMulSharedNormed(ReadOnlySpan<float> hidden, NativeBuffer normWeight, float epsilon, Span<float> normed, int tokens,
        WeightMatrix a, Span<float> ya, WeightMatrix b, Span<float> yb, WeightMatrix? c = null, Span<float> yc = default)
    {
        a.Check(hidden, ya, tokens);
        a.Check(normed, ya, tokens);
        b.Check(normed, yb, tokens);
        c?.Check(normed, yc, tokens);
        if (normWeight.Length != a.Columns)
            throw new ArgumentException($"{a.Name}: the norm needs {a.Columns} weights; got {normWeight.Length}", nameof(normWeight));
        var isa = KernelIsa.Active;
        if (a.SharesUnpacked(b, isa) && (c is null || a.SharesUnpacked(c, isa)))
        {
            fixed (float* ph = hidden)
            fixed (float* pn = normed)
            fixed (float* pya = ya)
            fixed (float* pyb = yb)
            fixed (float* pyc = yc)
                Kernels.Cpu.MatMul.ApplySharedNormed(new Kernels.Cpu.MatMul.RowNorm(ph, normWeight.Pointer, epsilon), pn, a.Columns, tokens, isa, WorkerPool.Shared,
                    a.Operand(pya), b.Operand(pyb), c?.Operand(pyc));
            return;
        }
        var columns = a.Columns;
        for (var t = 0; t < tokens; t++)
            VectorOps.RmsNorm(hidden.Slice(t * columns, columns), normWeight.Span, epsilon, normed.Slice(t * columns, columns));
        MatMulShared(normed, tokens, a, ya, b, yb, c, yc);
    }

    private bool RunsUnpacked(InstructionSet isa) => Data != null && InputOrder == null && !(_packed != null && PackedMatMul.HasFastPath(isa));

    /// <summary>Whether this matrix and <paramref name="other"/> both run on the stored rows and can share one preparation of their input.</summary>
    private bool SharesUnpacked(WeightMatrix other, InstructionSet isa) =>
        RunsUnpacked(isa) && other.RunsUnpacked(isa) && Type == other.Type && Columns == other.Columns && HalvesAreFinite == other.HalvesAreFinite;

    private Kernels.Cpu.MatMul.Operand Operand(float* y) => new(Type, Data, RowBytes, Rows, y, HalvesAreFinite);

    /// <summary>As <see cref="MatMul(ReadOnlySpan{float}, Span{float}, int)"/> on an explicit instruction set (tests).</summary>
    internal void MatMul(ReadOnlySpan<float> x, Span<float> y, int tokens, InstructionSet isa)
    {
        if (InputOrder is { } order)
        {
            // Act-order weights: the input in the order the stored columns hold it, once per call.
            var count = tokens * Columns;
            var gathered = System.Buffers.ArrayPool<float>.Shared.Rent(count);
            try
            {
                for (var t = 0; t < tokens; t++)
                {
                    var from = x.Slice(t * Columns, Columns);
                    var to = gathered.AsSpan(t * Columns, Columns);
                    for (var j = 0; j < to.Length; j++) to[j] = from[order[j]];
                }
                MatMulStored(gathered.AsSpan(0, count), y, tokens, isa);
            }
            finally
            {
                System.Buffers.ArrayPool<float>.Shared.Return(gathered);
            }
            return;
        }
        MatMulStored(x, y, tokens, isa);
    }

    private void MatMulStored(ReadOnlySpan<float> x, Span<float> y, int tokens, InstructionSet isa)
    {
        fixed (float* px = x)
        fixed (float* py = y)
        {
            if (_packed != null && PackedMatMul.HasFastPath(isa))
                PackedMatMul.Apply(_packed, px, py, tokens, isa, WorkerPool.Shared);
            else if (Data == null)
                PackedMatMul.Apply(_packed!, px, py, tokens, InstructionSet.Scalar, WorkerPool.Shared); // only the packed copy is left
            else
                Kernels.Cpu.MatMul.Apply(Type, Data, RowBytes, Rows, Columns, px, py, tokens, isa, WorkerPool.Shared, HalvesAreFinite);
        }
    }

    /// <summary>0 not checked yet, 1 every half finite, 2 an infinity or NaN somewhere (F16 only).</summary>
    private int _halvesFinite;

    /// <summary>
    /// F16 weights with no infinity or NaN may run through the fast conversion (<see cref="F16ScaledRow"/>).
    /// Checked on the first multiply, not at load, so a matrix never used is never read; a race
    /// between two first calls only checks twice.
    /// </summary>
    internal bool HalvesAreFinite
    {
        get
        {
            if (Type != GgmlType.F16) return false;
            if (_halvesFinite == 0)
                _halvesFinite = HalfKernels.AllFinite((ushort*)Data, (long)Rows * Columns, WorkerPool.Shared) ? 1 : 2;
            return _halvesFinite == 1;
        }
    }

    /// <summary>Whether <see cref="MatMul"/> runs on the repacked copy.</summary>
    public bool IsPacked => _packed != null;

    /// <summary>
    /// Repacks Q8_0/Q4_0 weights for the packed kernel where <see cref="PackedMatMul.Repacks"/> says so (a no-op otherwise), so
    /// every later <see cref="MatMul"/> reads the packed copy. When the weights are a view of a
    /// memory-mapped file (<paramref name="releaseMappedPages"/>), the file's pages are then handed back
    /// to the page cache: the process keeps one resident copy, not two. The file view stays valid
    /// (rows read through <see cref="DequantizeRow"/> or a lower instruction set fault back in).
    /// </summary>
    public void PrepareForKernels(bool releaseMappedPages) => PrepareForKernels(releaseMappedPages, KernelIsa.Active);

    /// <summary>As <see cref="PrepareForKernels(bool)"/> for an explicit instruction set (tests).</summary>
    public void PrepareForKernels(bool releaseMappedPages, InstructionSet isa)
    {
        ObjectDisposedException.ThrowIf(_freed, this);
        if (_packed != null) return;
        if (PackedMatMul.Repacks(Type, isa) && PackedQuantMatrix.CanPack(Type, Columns))
        {
            _packed = PackedQuantMatrix.Pack(Type, Data, RowBytes, Rows, Columns, WorkerPool.Shared);
        }
        else
        {
            // Everything else (the K-quants included) runs on the weights as stored: the file's pages are
            // the only copy, so resident weight memory is the file's tensor bytes.
            return;
        }
        if (_owned != null && _packed.Type == Type)
        {
            // A copy quantized at load: the packed one replaces it, so the weights are held once.
            AnonymousPages.Free(_owned, RowBytes * Rows);
            _owned = null;
            Data = null;
        }
        else if (releaseMappedPages && _owned == null)
        {
            MappedPages.Release(Data, RowBytes * Rows);
        }
    }

    /// <summary>Row <paramref name="row"/> in the stored layout (<see cref="RowBytes"/> bytes), from the rows or rebuilt from the packed copy.</summary>
    public void StoredRow(int row, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_freed, this);
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row), row, $"{Name} has {Rows} rows");
        if (_rowFile != null) ReadStoredRow(row, destination);
        else if (Data != null) new ReadOnlySpan<byte>(Data + row * RowBytes, checked((int)RowBytes)).CopyTo(destination);
        else _packed!.StoredRow(row, destination);
    }

    /// <summary>
    /// Row lookups (<see cref="DequantizeRow"/>, <see cref="StoredRow"/>) read the rows from
    /// <paramref name="path"/> at <paramref name="offset"/> with positioned reads, and the mapped pages
    /// are handed back. For the token embedding: a lookup touches one row, but a page fault on the
    /// mapping brings in the kernel's fault-around window (64 KiB) of resident pages, so serving a
    /// varied vocabulary made the whole table resident in this process. Read through the page cache,
    /// it is shared and reclaimable instead. The file must hold the same bytes as the mapping.
    /// </summary>
    internal bool ReadsRowsFromFile => _rowFile != null;

    internal void ReadRowsFromFile(string path, long offset)
    {
        ObjectDisposedException.ThrowIf(_freed, this);
        if (Data == null) throw new InvalidOperationException($"{Name}: no stored rows to read from a file");
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        if (RandomAccess.GetLength(handle) < offset + RowBytes * Rows)
        {
            handle.Dispose();
            throw new InvalidDataException($"{Name}: {path} ends before the {RowBytes * Rows} bytes at offset {offset}");
        }
        _rowFile = handle;
        _rowFileOffset = offset;
        MappedPages.Release(Data, RowBytes * Rows);
    }

    private void ReadStoredRow(int row, Span<byte> destination)
    {
        var rowBytes = checked((int)RowBytes);
        for (var done = 0; done < rowBytes;)
        {
            var read = RandomAccess.Read(_rowFile!, destination.Slice(done, rowBytes - done), _rowFileOffset + row * RowBytes + done);
            if (read == 0) throw new EndOfStreamException($"{Name}: row {row} ends past the end of the file");
            done += read;
        }
    }

    /// <summary>One row as float32 (embedding lookup).</summary>
    public void DequantizeRow(int row, Span<float> destination)
    {
        ObjectDisposedException.ThrowIf(_freed, this);
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row), row, $"{Name} has {Rows} rows");
        if (_rowFile != null)
        {
            var bytes = _storedRowScratch is { } r && r.Length >= RowBytes ? r : (_storedRowScratch = new byte[RowBytes]);
            ReadStoredRow(row, bytes);
            Dequantize.Row(Type, bytes.AsSpan(0, checked((int)RowBytes)), destination[..Columns]);
            return;
        }
        if (InputOrder is { } order)
        {
            var ordered = _orderedRowScratch is { } f && f.Length >= Columns ? f : (_orderedRowScratch = new float[Columns]);
            Dequantize.Row(Type, new ReadOnlySpan<byte>(Data + row * RowBytes, checked((int)RowBytes)), ordered.AsSpan(0, Columns));
            for (var j = 0; j < Columns; j++) destination[order[j]] = ordered[j];
            return;
        }
        if (Data != null)
        {
            Dequantize.Row(Type, new ReadOnlySpan<byte>(Data + row * RowBytes, checked((int)RowBytes)), destination[..Columns]);
            return;
        }
        var stored = _storedRowScratch is { } b && b.Length >= RowBytes ? b : (_storedRowScratch = new byte[RowBytes]);
        _packed!.StoredRow(row, stored);
        Dequantize.Row(Type, stored.AsSpan(0, checked((int)RowBytes)), destination[..Columns]);
    }

    [ThreadStatic] private static byte[]? _storedRowScratch;
    [ThreadStatic] private static float[]? _orderedRowScratch;

    /// <summary>
    /// A new matrix holding this one's weights converted to <paramref name="target"/> (Q8_0 or Q4_0)
    /// in native memory it owns, quantized exactly as ggml's reference quantizers do: on-the-fly
    /// quantization of F32/F16/BF16 weights at load (<c>--quantize q8_0|q4_0</c>). Rows are
    /// converted in parallel on <see cref="WorkerPool.Shared"/>. Dispose the result to free it.
    /// </summary>
    public WeightMatrix Quantize(GgmlType target)
    {
        if (target is not (GgmlType.Q8_0 or GgmlType.Q4_0))
            throw new ArgumentException($"{Name}: quantization target must be Q8_0 or Q4_0; got {target}", nameof(target));
        if (Type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16))
            throw new NotSupportedException($"{Name}: only F32, F16 and BF16 weights can be quantized on load; this matrix is {Type}");
        return Convert(target);
    }

    /// <summary>Any supported type → Q8_0/Q4_0 through float32, row by row on the worker pool.</summary>
    private WeightMatrix Convert(GgmlType target)
    {
        if (Data == null) throw new InvalidOperationException($"{Name}: only the packed copy of this matrix is left; convert it before packing");
        if (Columns % Dequantize.QuantBlock != 0)
            throw new ArgumentException($"{Name}: {target} needs a row length that is a multiple of {Dequantize.QuantBlock}; got {Columns}");
        var rowBytes = GgmlTypes.ByteSize(target, Columns);
        var data = (byte*)AnonymousPages.Allocate(rowBytes * Rows);
        var job = new QuantizeJob { Source = this.Data, SourceType = Type, SourceRowBytes = RowBytes, Target = target, TargetRowBytes = rowBytes, Destination = data, Columns = Columns };
        WorkerPool.Shared.Run(&QuantizeRow, &job, Rows);
        return new WeightMatrix(Name, target, Rows, Columns, data) { _owned = data };
    }

    private struct QuantizeJob
    {
        public byte* Source, Destination;
        public GgmlType SourceType, Target;
        public long SourceRowBytes, TargetRowBytes;
        public int Columns;
    }

    [ThreadStatic] private static float[]? _rowScratch;

    private static void QuantizeRow(void* context, int row)
    {
        var job = (QuantizeJob*)context;
        var floats = _rowScratch is { } f && f.Length >= job->Columns ? f : (_rowScratch = new float[job->Columns]);
        var values = floats.AsSpan(0, job->Columns);
        Dequantize.Row(job->SourceType, new ReadOnlySpan<byte>(job->Source + row * job->SourceRowBytes, checked((int)job->SourceRowBytes)), values);
        Kernels.Reference.Quantize.Row(job->Target, values, new Span<byte>(job->Destination + row * job->TargetRowBytes, checked((int)job->TargetRowBytes)));
    }

    /// <summary>Frees memory this matrix owns (a quantized copy); a view of a mapped file owns none.</summary>
    public void Dispose()
    {
        _rowFile?.Dispose();
        _rowFile = null;
        if (_packed != null)
        {
            _packed.Dispose();
            _packed = null;
            _freed = true;
        }
        if (_owned == null) return;
        AnonymousPages.Free(_owned, RowBytes * Rows);
        _owned = null;
        _freed = true;
    }
}
