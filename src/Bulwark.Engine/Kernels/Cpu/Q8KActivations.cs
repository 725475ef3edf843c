using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Bulwark.Engine.Memory;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// Activation rows quantized to ggml's Q8_K (quantize_row_q8_K_ref), the form the K-quant dot products
/// take: super-blocks of 256 values, a float scale d = max / −127 where max is the value of largest
/// magnitude (the first, on a tie), q = min(127, round(x / d)), and Σq over each 16 values (the
/// "bsums" that fold the K-quants' minimums and offsets into one multiply per 16). Three planes, as
/// <see cref="Q8Activations"/>: quants, scales, sums. Per-thread scratch, reused after warm-up.
/// </summary>
internal sealed unsafe class Q8KActivations
{
    public const int Block = 256;
    public const int Groups = Block / 16;

    [ThreadStatic] private static Q8KActivations? _scratch;

    private long _capacityBlocks;

    public sbyte* Quants { get; private set; }
    public float* Scales { get; private set; }
    public short* Sums { get; private set; }
    public int Blocks { get; private set; }

    public Q8KRows Rows => new(Quants, Scales, Sums, Blocks);

    public static Q8KActivations ForThread(int tokens, int columns)
    {
        var scratch = _scratch ??= new Q8KActivations();
        scratch.Reserve(tokens, columns);
        return scratch;
    }

    private void Reserve(int tokens, int columns)
    {
        if (columns % Block != 0)
            throw new ArgumentException($"columns must be a multiple of {Block} for K-quant activations; got {columns}", nameof(columns));
        Blocks = columns / Block;
        var needed = (long)tokens * Blocks;
        if (needed <= _capacityBlocks) return;
        Free();
        var capacity = Math.Max(needed, 16);
        Quants = (sbyte*)AnonymousPages.Allocate(capacity * Block);
        Scales = (float*)AnonymousPages.Allocate(capacity * sizeof(float));
        Sums = (short*)AnonymousPages.Allocate(capacity * Groups * sizeof(short));
        _capacityBlocks = capacity;
    }

    /// <summary>The scalar twin: quantize_row_q8_K_ref for one super-block.</summary>
    public static void QuantizeBlockScalar(float* x, sbyte* q, float* scale, short* sums)
    {
        float amax = 0, max = 0;
        for (var i = 0; i < Block; i++)
        {
            var ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        if (amax == 0)
        {
            new Span<sbyte>(q, Block).Clear();
            new Span<short>(sums, Groups).Clear();
            *scale = 0;
            return;
        }
        var iscale = -127f / max;
        for (var i = 0; i < Block; i++) q[i] = (sbyte)Math.Min(127, (int)MathF.Round(iscale * x[i]));
        for (var g = 0; g < Groups; g++)
        {
            var sum = 0;
            for (var i = 0; i < 16; i++) sum += q[g * 16 + i];
            sums[g] = (short)sum;
        }
        *scale = 1 / iscale;
    }

    /// <summary>The same values as <see cref="QuantizeBlockScalar"/> with 256-bit vectors.</summary>
    public static void QuantizeBlockVector(float* x, sbyte* q, float* scale, short* sums)
    {
        var m = Vector256<float>.Zero;
        for (var i = 0; i < Block; i += 8) m = Vector256.Max(m, Vector256.Abs(Vector256.Load(x + i)));
        var amax = MaxLane(m);
        if (amax == 0)
        {
            new Span<sbyte>(q, Block).Clear();
            new Span<short>(sums, Groups).Clear();
            *scale = 0;
            return;
        }
        var first = 0;
        while (first < Block && MathF.Abs(x[first]) != amax) first++;
        if (first == Block)
        {
            // NaN in the row: the vector max and the scalar scan disagree on it; take the twin's answer.
            QuantizeBlockScalar(x, q, scale, sums);
            return;
        }
        var iscale = -127f / x[first];
        var vs = Vector256.Create(iscale);
        var top = Vector256.Create(127);
        for (var i = 0; i < Block; i += 32)
        {
            var i0 = Vector256.Min(Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x + i) * vs)), top);
            var i1 = Vector256.Min(Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x + i + 8) * vs)), top);
            var i2 = Vector256.Min(Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x + i + 16) * vs)), top);
            var i3 = Vector256.Min(Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x + i + 24) * vs)), top);
            var s01 = Vector256.Narrow(i0, i1);
            var s23 = Vector256.Narrow(i2, i3);
            Vector256.Narrow(s01, s23).Store(q + i);
            // Σ of each 16: lanes 0-7 + 8-15 of the int32 pairs.
            sums[i / 16] = (short)Vector256.Sum(i0 + i1);
            sums[i / 16 + 1] = (short)Vector256.Sum(i2 + i3);
        }
        *scale = 1 / iscale;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float MaxLane(Vector256<float> m)
    {
        var h = Vector128.Max(m.GetLower(), m.GetUpper());
        return MathF.Max(MathF.Max(h[0], h[1]), MathF.Max(h[2], h[3]));
    }

    private void Free()
    {
        AnonymousPages.Free(Quants, _capacityBlocks * Block);
        AnonymousPages.Free(Scales, _capacityBlocks * sizeof(float));
        AnonymousPages.Free(Sums, _capacityBlocks * Groups * sizeof(short));
        Quants = null;
        Scales = null;
        Sums = null;
        _capacityBlocks = 0;
    }

    ~Q8KActivations() => Free();
}

/// <summary>Q8_K activation rows as <see cref="Q8KActivations"/> lays them out: token t's super-block b at index t·Blocks + b.</summary>
internal readonly unsafe struct Q8KRows(sbyte* quants, float* scales, short* sums, int blocks)
{
    public readonly sbyte* Quants = quants;
    public readonly float* Scales = scales;
    public readonly short* Sums = sums;
    public readonly int Blocks = blocks;

    /// <summary>Quantizes token rows [first, first + count) of x (row stride = Blocks · 256).</summary>
    public void Quantize(float* x, int first, int count, InstructionSet isa)
    {
        var columns = (long)Blocks * Q8KActivations.Block;
        for (var t = first; t < first + count; t++)
        for (var b = 0; b < Blocks; b++)
        {
            var index = (long)t * Blocks + b;
            var source = x + t * columns + b * Q8KActivations.Block;
            if (isa == InstructionSet.Scalar)
                Q8KActivations.QuantizeBlockScalar(source, Quants + index * Q8KActivations.Block, Scales + index, Sums + index * Q8KActivations.Groups);
            else
                Q8KActivations.QuantizeBlockVector(source, Quants + index * Q8KActivations.Block, Scales + index, Sums + index * Q8KActivations.Groups);
        }
    }
}
