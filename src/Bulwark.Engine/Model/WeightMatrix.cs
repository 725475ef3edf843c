using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Kernels.Reference;

namespace Bulwark.Engine.Model;

/// <summary>
/// A row-major [Rows × Columns] weight matrix in native memory (usually the model file's memory
/// map) in its stored type. Every matmul in the model goes through <see cref="MatVec"/> and
/// <see cref="MatMul"/>: the single place where faster kernels are swapped in.
/// </summary>
public sealed unsafe class WeightMatrix
{
    public WeightMatrix(string name, GgmlType type, int rows, int columns, byte* data)
    {
        if (!Dequantize.IsSupported(type))
            throw new NotSupportedException($"{name}: weight type {type} is not supported (supported: F32, F16, BF16, Q8_0, Q4_0)");
        Name = name;
        Type = type;
        Rows = rows;
        Columns = columns;
        RowBytes = GgmlTypes.ByteSize(type, columns);
        Data = data;
    }

    public string Name { get; }
    public GgmlType Type { get; }
    public int Rows { get; }
    public int Columns { get; }
    public long RowBytes { get; }

    /// <summary>First byte of row 0; rows follow each other <see cref="RowBytes"/> apart.</summary>
    public byte* Data { get; }

    /// <summary>y[Rows] = W · x[Columns].</summary>
    public void MatVec(ReadOnlySpan<float> x, Span<float> y) => MatMul(x, y, 1);

    /// <summary>
    /// Y[n × Rows] = X[n × Columns] · Wᵀ, one input row per token, on <see cref="WorkerPool.Shared"/>
    /// with the best <see cref="KernelIsa.Active"/> kernels. Quantized weights multiply 8-bit
    /// quantized activations (as llama.cpp does); float weights use float32 FMA.
    /// </summary>
    public void MatMul(ReadOnlySpan<float> x, Span<float> y, int tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        if (x.Length < (long)tokens * Columns)
            throw new ArgumentException($"{Name}: input needs {tokens} × {Columns} floats; got {x.Length}", nameof(x));
        if (y.Length < (long)tokens * Rows)
            throw new ArgumentException($"{Name}: output needs {tokens} × {Rows} floats; got {y.Length}", nameof(y));
        fixed (float* px = x)
        fixed (float* py = y)
            Kernels.Cpu.MatMul.Apply(Type, Data, RowBytes, Rows, Columns, px, py, tokens, KernelIsa.Active, WorkerPool.Shared);
    }

    /// <summary>One row as float32 (embedding lookup).</summary>
    public void DequantizeRow(int row, Span<float> destination)
    {
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row), row, $"{Name} has {Rows} rows");
        Dequantize.Row(Type, new ReadOnlySpan<byte>(Data + row * RowBytes, checked((int)RowBytes)), destination[..Columns]);
    }
}
