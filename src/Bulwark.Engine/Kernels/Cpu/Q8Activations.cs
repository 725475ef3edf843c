using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Bulwark.Engine.Memory;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// Activation rows quantized to ggml's Q8_0 scheme (blocks of 32 values, scale d = max|x| / 127
/// rounded to float16, q = round(x / d)), kept as two planes: all int8 quants back to back
/// (so 64 bytes of two blocks load as one 512-bit vector) and one float scale per block (the f16
/// value widened once, so kernels do not convert it per row). Per-thread scratch grows to the
/// largest batch seen and is reused: no allocation per call after warm-up.
/// </summary>
internal sealed unsafe class Q8Activations
{
    public const int Block = 32;

    [ThreadStatic] private static Q8Activations? _scratch;

    private long _capacityBlocks;

    /// <summary>int8 quants: token t's block b at <c>Quants + (t * Blocks + b) * 32</c>.</summary>
    public sbyte* Quants { get; private set; }

    /// <summary>Scales: token t's block b at <c>Scales[t * Blocks + b]</c>.</summary>
    public float* Scales { get; private set; }

    public int Blocks { get; private set; }
    public int Tokens { get; private set; }

    /// <summary>Per block, Σ of its quants times the packed kernel's offset (see <see cref="Q8Rows.Quantize(float*, int, int, InstructionSet, int)"/>).</summary>
    public int* Sums { get; private set; }

    /// <summary>The planes as a plain struct, for kernels running on worker threads.</summary>
    public Q8Rows Rows => new(Quants, Scales, Sums, Blocks);

    /// <summary>This thread's scratch buffer, sized for <paramref name="tokens"/> rows of <paramref name="columns"/>.</summary>
    public static Q8Activations ForThread(int tokens, int columns)
    {
        var scratch = _scratch ??= new Q8Activations();
        scratch.Reserve(tokens, columns);
        return scratch;
    }

    private void Reserve(int tokens, int columns)
    {
        if (columns % Block != 0)
            throw new ArgumentException($"columns must be a multiple of {Block} for 8-bit activations; got {columns}", nameof(columns));
        Blocks = columns / Block;
        Tokens = tokens;
        var needed = (long)tokens * Blocks;
        if (needed <= _capacityBlocks) return;
        Free();
        var capacity = Math.Max(needed, 64);
        Quants = (sbyte*)AnonymousPages.Allocate(capacity * Block);
        Scales = (float*)AnonymousPages.Allocate(capacity * sizeof(float));
        Sums = (int*)AnonymousPages.Allocate(capacity * sizeof(int));
        _capacityBlocks = capacity;
    }

    /// <summary>ggml's quantize_row_q8_0 for one block (rounding half to even, as its AVX2 path does).</summary>
    public static void QuantizeBlockScalar(float* x, sbyte* q, float* scale)
    {
        var amax = 0f;
        for (var i = 0; i < Block; i++) amax = MathF.Max(amax, MathF.Abs(x[i]));
        var d = amax / 127f;
        var id = d != 0 ? 1f / d : 0f;
        for (var i = 0; i < Block; i++) q[i] = (sbyte)(int)MathF.Round(x[i] * id);
        *scale = (float)(Half)d;
    }

    public static void QuantizeBlockVector(float* x, sbyte* q, float* scale)
    {
        var v0 = Vector256.Load(x);
        var v1 = Vector256.Load(x + 8);
        var v2 = Vector256.Load(x + 16);
        var v3 = Vector256.Load(x + 24);
        var m = Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
        var amax = MathF.Max(MathF.Max(MathF.Max(m[0], m[1]), MathF.Max(m[2], m[3])), MathF.Max(MathF.Max(m[4], m[5]), MathF.Max(m[6], m[7])));
        var d = amax / 127f;
        var id = Vector256.Create(d != 0 ? 1f / d : 0f);
        var i0 = Vector256.ConvertToInt32(Vector256.Round(v0 * id));
        var i1 = Vector256.ConvertToInt32(Vector256.Round(v1 * id));
        var i2 = Vector256.ConvertToInt32(Vector256.Round(v2 * id));
        var i3 = Vector256.ConvertToInt32(Vector256.Round(v3 * id));
        var s01 = Vector256.Narrow(i0, i1);
        var s23 = Vector256.Narrow(i2, i3);
        Vector256.Narrow(s01, s23).Store(q);
        *scale = (float)(Half)d;
    }

    private void Free()
    {
        AnonymousPages.Free(Quants, _capacityBlocks * Block);
        AnonymousPages.Free(Scales, _capacityBlocks * sizeof(float));
        AnonymousPages.Free(Sums, _capacityBlocks * sizeof(int));
        Quants = null;
        Scales = null;
        Sums = null;
        _capacityBlocks = 0;
    }

    ~Q8Activations() => Free();
}

/// <summary>Quantized activation rows as <see cref="Q8Activations"/> lays them out.</summary>
internal readonly unsafe struct Q8Rows(sbyte* quants, float* scales, int* sums, int blocks)
{
    public readonly sbyte* Quants = quants;
    public readonly float* Scales = scales;
    public readonly int* Sums = sums;
    public readonly int Blocks = blocks;

    /// <summary>Quantizes token rows [first, first + count) of x (row stride = columns).</summary>
    public void Quantize(float* x, int first, int count, InstructionSet isa)
    {
        var columns = Blocks * Q8Activations.Block;
        for (var t = first; t < first + count; t++)
        {
            for (var b = 0; b < Blocks; b++)
            {
                var source = x + (long)t * columns + b * Q8Activations.Block;
                var index = (long)t * Blocks + b;
                if (isa == InstructionSet.Scalar) Q8Activations.QuantizeBlockScalar(source, Quants + index * Q8Activations.Block, Scales + index);
                else Q8Activations.QuantizeBlockVector(source, Quants + index * Q8Activations.Block, Scales + index);
            }
        }
    }

    /// <summary>
    /// As <see cref="Quantize(float*, int, int, InstructionSet)"/>, and also each block's Σq times
    /// <paramref name="offset"/>: what the packed kernel subtracts for its unsigned weights.
    /// </summary>
    public void Quantize(float* x, int first, int count, InstructionSet isa, int offset)
    {
        Quantize(x, first, count, isa);
        for (var t = first; t < first + count; t++)
        {
            for (var b = 0; b < Blocks; b++)
            {
                var index = (long)t * Blocks + b;
                Sums[index] = offset * (isa == InstructionSet.Scalar ? SumScalar(Quants + index * Q8Activations.Block) : SumVector(Quants + index * Q8Activations.Block));
            }
        }
    }

    /// <summary>
    /// As <see cref="Quantize(float*, int, int, InstructionSet)"/> in ggml's Q8_1 form (the activations of
    /// Q4_1/Q5_1): each block also gets s = d·Σq rounded to f16 as Q8_1 stores it, kept as float bits in
    /// <see cref="Sums"/> (read with <see cref="ScaledSum"/>).
    /// </summary>
    public void QuantizeQ8_1(float* x, int first, int count, InstructionSet isa)
    {
        Quantize(x, first, count, isa, offset: 1);
        for (var index = (long)first * Blocks; index < (long)(first + count) * Blocks; index++)
            Sums[index] = BitConverter.SingleToInt32Bits((float)(Half)(Scales[index] * Sums[index]));
    }

    /// <summary>Block <paramref name="index"/>'s s after <see cref="QuantizeQ8_1"/>.</summary>
    public float ScaledSum(long index) => BitConverter.Int32BitsToSingle(Sums[index]);

    private static int SumScalar(sbyte* q)
    {
        var sum = 0;
        for (var i = 0; i < Q8Activations.Block; i++) sum += q[i];
        return sum;
    }

    private static int SumVector(sbyte* q)
    {
        var (low, high) = Vector256.Widen(Vector256.Load(q));
        return Vector256.Sum(low + high);
    }
}
