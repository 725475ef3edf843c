using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>Elements of an F32/F16/BF16 weight row widened to float32, 8 or 16 at a time.</summary>
internal unsafe interface IFloatRow
{
    static abstract Vector256<float> Load8(byte* row, int i);
    static abstract Vector512<float> Load16(byte* row, int i);
    static abstract float Load1(byte* row, int i);
}

internal unsafe struct F32Row : IFloatRow
{
    public static Vector256<float> Load8(byte* row, int i) => Vector256.Load((float*)row + i);
    public static Vector512<float> Load16(byte* row, int i) => Vector512.Load((float*)row + i);
    public static float Load1(byte* row, int i) => ((float*)row)[i];
}

/// <summary>bfloat16 is the top half of a float32's bits.</summary>
internal unsafe struct BF16Row : IFloatRow
{
    // Perf: one vpmovzxwd where the ISA has it (the portable widen is two and an insert).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* row, int i)
    {
        if (Avx2.IsSupported) return Vector256.ShiftLeft(Avx2.ConvertToVector256Int32((ushort*)row + i), 16).AsSingle();
        var (lo, hi) = Vector128.Widen(Vector128.Load((ushort*)row + i));
        return Vector256.ShiftLeft(Vector256.Create(lo, hi), 16).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(byte* row, int i)
    {
        if (Avx512F.IsSupported) return Vector512.ShiftLeft(Avx512F.ConvertToVector512UInt32(Vector256.Load((ushort*)row + i)), 16).AsSingle();
        var (lo, hi) = Vector256.Widen(Vector256.Load((ushort*)row + i));
        return Vector512.ShiftLeft(Vector512.Create(lo, hi), 16).AsSingle();
    }

    public static float Load1(byte* row, int i) => BitConverter.Int32BitsToSingle(((ushort*)row)[i] << 16);
}

/// <summary>
/// float16 widened with integer operations (.NET exposes no F16C intrinsic): exponent and mantissa
/// shifted into place and the exponent rebiased; subnormal halves through one exact float subtract
/// (a multiply by 2^112 would take a denormal operand, which costs a microcode assist per element);
/// infinities and NaNs get the all-ones exponent; the sign is copied.
/// </summary>
internal unsafe struct F16Row : IFloatRow
{
    /// <summary>2^-14, the smallest normal half.</summary>
    private const float MinNormal = 6.103515625e-05f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* row, int i)
    {
        var (lo, hi) = Vector128.Widen(Vector128.Load((ushort*)row + i));
        return Convert(Vector256.Create(lo, hi));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(byte* row, int i)
    {
        var (lo, hi) = Vector256.Widen(Vector256.Load((ushort*)row + i));
        return Vector512.Create(Convert(lo), Convert(hi));
    }

    public static float Load1(byte* row, int i) => HalfTable.ToSingle(((ushort*)row)[i]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Convert(Vector256<uint> h)
    {
        var shifted = Vector256.ShiftLeft(h & Vector256.Create(0x7FFFu), 13);
        var exponent = shifted & Vector256.Create(0x0F800000u);
        // Normal halves: rebias the exponent with an integer add (no float operation at all).
        var normal = shifted + Vector256.Create(112u << 23);
        // Subnormal halves (and zero): exponent 1 then subtract 2^-14, exact and never a denormal operand.
        var subnormal = ((shifted + Vector256.Create(113u << 23)).AsSingle() - Vector256.Create(MinNormal)).AsUInt32();
        var bits = Vector256.ConditionalSelect(Vector256.Equals(exponent, Vector256<uint>.Zero), subnormal, normal);
        bits = Vector256.ConditionalSelect(Vector256.Equals(exponent, Vector256.Create(0x0F800000u)), shifted | Vector256.Create(0x7F800000u), bits);
        return (bits | Vector256.ShiftLeft(h & Vector256.Create(0x8000u), 16)).AsSingle();
    }
}

/// <summary>
/// F32/F16/BF16 weight rows times float32 activation rows with FMA, 4 tokens per weight load.
/// The scalar twin is <see cref="Reference.MatVec.DotRow"/>.
/// </summary>
internal static unsafe class FloatKernels
{
    public static bool Handles(GgmlType type) => type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16;

    /// <summary>y[t * yStride + r] = row r · x[t * columns ..], for r in [r0, r1) and t in [t0, t1).</summary>
    public static void Tile(GgmlType type, InstructionSet isa, byte* w, long rowBytes, int columns, int r0, int r1,
        float* x, int t0, int t1, float* y, int yStride)
    {
        if (isa == InstructionSet.Scalar)
        {
            for (var r = r0; r < r1; r++)
            for (var t = t0; t < t1; t++)
                y[(long)t * yStride + r] = Reference.MatVec.DotRow(type, w + r * rowBytes, columns, new ReadOnlySpan<float>(x + (long)t * columns, columns));
            return;
        }
        var wide = isa == InstructionSet.Avx512;
        switch (type)
        {
            case GgmlType.F32: Tile<F32Row>(wide, w, rowBytes, columns, r0, r1, x, t0, t1, y, yStride); break;
            case GgmlType.F16: Tile<F16Row>(wide, w, rowBytes, columns, r0, r1, x, t0, t1, y, yStride); break;
            case GgmlType.BF16: Tile<BF16Row>(wide, w, rowBytes, columns, r0, r1, x, t0, t1, y, yStride); break;
            default: throw new NotSupportedException($"no float kernel for {type}");
        }
    }

    /// <summary>
    /// F16 rows against activations already multiplied by 2^112 (<see cref="HalfKernels.TryScale"/>) on a
    /// SIMD path: the same bits as <see cref="Tile"/> of F16 over the unscaled activations, faster, for
    /// rows with no infinite or NaN half (<see cref="F16ScaledRow"/>).
    /// </summary>
    public static void TileScaledHalf(InstructionSet isa, byte* w, long rowBytes, int columns, int r0, int r1,
        float* scaledX, int t0, int t1, float* y, int yStride)
    {
        if (isa == InstructionSet.Scalar) throw new ArgumentOutOfRangeException(nameof(isa), isa, "the scaled half kernel has SIMD paths only; its twin is Tile(F16)");
        Tile<F16ScaledRow>(isa == InstructionSet.Avx512, w, rowBytes, columns, r0, r1, scaledX, t0, t1, y, yStride);
    }

    /// <summary>An F16 or BF16 row as float32, with the same conversion the kernels apply as they load it.</summary>
    public static void Widen(GgmlType type, byte* row, int columns, float* destination)
    {
        switch (type)
        {
            case GgmlType.F16: Widen<F16Row>(row, columns, destination); break;
            case GgmlType.BF16: Widen<BF16Row>(row, columns, destination); break;
            default: throw new NotSupportedException($"only F16 and BF16 rows are widened; got {type}");
        }
    }

    /// <summary>
    /// An F16 row with no infinity or NaN as float32: <see cref="F16ScaledRow"/>'s half × 2^-112 times 2^112, the
    /// same values as <see cref="Widen(GgmlType, byte*, int, float*)"/> of F16 (bit for bit, subnormal halves and
    /// signed zeros included: scaling by a power of two inside float32's range is exact) in 4 vector operations per
    /// 16 halves instead of about 25. An infinite or NaN half would come out finite, so only rows that
    /// <see cref="HalfKernels.AllFinite(ushort*, long)"/> accepted may come here.
    /// <para>
    /// Perf: the GEMM path (from <see cref="MatMul.WidenFrom"/> tokens) widens every row once per call. A subnormal
    /// half is a subnormal multiplicand here, which some Intel CPUs take a microcode assist for; trained weights
    /// hold few (the scaled decode path already makes the same trade).
    /// </para>
    /// </summary>
    public static void WidenFiniteHalves(byte* row, int columns, float* destination)
    {
        var i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i + 16 <= columns; i += 16) (F16ScaledRow.Load16(row, i) * Vector512.Create(HalfKernels.Scale)).Store(destination + i);
        for (; i + 8 <= columns; i += 8) (F16ScaledRow.Load8(row, i) * Vector256.Create(HalfKernels.Scale)).Store(destination + i);
        for (; i < columns; i++) destination[i] = F16ScaledRow.Load1(row, i) * HalfKernels.Scale;
    }

    private static void Widen<TR>(byte* row, int columns, float* destination) where TR : IFloatRow
    {
        var i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i + 16 <= columns; i += 16) TR.Load16(row, i).Store(destination + i);
        for (; i + 8 <= columns; i += 8) TR.Load8(row, i).Store(destination + i);
        for (; i < columns; i++) destination[i] = TR.Load1(row, i);
    }

    private static void Tile<TR>(bool wide, byte* w, long rowBytes, int columns, int r0, int r1, float* x, int t0, int t1, float* y, int yStride)
        where TR : IFloatRow
    {
        var r = r0;
        if (wide && typeof(TR) == typeof(F32Row) && t1 - t0 >= 4)
        {
            // Float32 rows (F32 weights, or F16/BF16 widened once): 4 rows × 4 tokens per pass, each loaded
            // vector feeding 4 FMAs; per (row, token) the same FMA sequence as Dot4x512, so the same bits.
            for (; r + 4 <= r1; r += 4)
            {
                var row = w + r * rowBytes;
                var t = t0;
                for (; t + 4 <= t1; t += 4)
                    Dot4x4x512((float*)row, rowBytes / sizeof(float), columns, x + (long)t * columns, y + (long)t * yStride + r, yStride);
                for (; t < t1; t++)
                for (var i = 0; i < 4; i++)
                    y[(long)t * yStride + r + i] = Dot1x512<TR>(row + i * rowBytes, columns, x + (long)t * columns);
            }
        }
        if (t1 - t0 < 4)
        {
            // Decode: 4 rows per pass share each activation load and keep 4 weight streams in flight;
            // per row the same FMA sequence as Dot1x512/Dot1x256, so the same bits.
            for (; r + 4 <= r1; r += 4)
            {
                var row = w + r * rowBytes;
                for (var t = t0; t < t1; t++)
                {
                    if (wide) Dot4Rows512<TR>(row, rowBytes, columns, x + (long)t * columns, y + (long)t * yStride + r);
                    else Dot4Rows256<TR>(row, rowBytes, columns, x + (long)t * columns, y + (long)t * yStride + r);
                }
            }
        }
        for (; r < r1; r++)
        {
            var row = w + r * rowBytes;
            var t = t0;
            for (; t + 4 <= t1; t += 4)
            {
                if (wide) Dot4x512<TR>(row, columns, x + (long)t * columns, y + (long)t * yStride + r, yStride);
                else Dot4x256<TR>(row, columns, x + (long)t * columns, y + (long)t * yStride + r, yStride);
            }
            for (; t < t1; t++)
                y[(long)t * yStride + r] = wide ? Dot1x512<TR>(row, columns, x + (long)t * columns) : Dot1x256<TR>(row, columns, x + (long)t * columns);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot1x256<TR>(byte* row, int columns, float* x) where TR : IFloatRow
    {
        var a0 = Vector256<float>.Zero;
        var a1 = Vector256<float>.Zero;
        var i = 0;
        for (; i + 16 <= columns; i += 16)
        {
            a0 = Vector256.FusedMultiplyAdd(TR.Load8(row, i), Vector256.Load(x + i), a0);
            a1 = Vector256.FusedMultiplyAdd(TR.Load8(row, i + 8), Vector256.Load(x + i + 8), a1);
        }
        for (; i + 8 <= columns; i += 8)
            a0 = Vector256.FusedMultiplyAdd(TR.Load8(row, i), Vector256.Load(x + i), a0);
        var sum = Vector256.Sum(a0 + a1);
        for (; i < columns; i++) sum += TR.Load1(row, i) * x[i];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot1x512<TR>(byte* row, int columns, float* x) where TR : IFloatRow
    {
        var a0 = Vector512<float>.Zero;
        var a1 = Vector512<float>.Zero;
        var i = 0;
        for (; i + 32 <= columns; i += 32)
        {
            a0 = Vector512.FusedMultiplyAdd(TR.Load16(row, i), Vector512.Load(x + i), a0);
            a1 = Vector512.FusedMultiplyAdd(TR.Load16(row, i + 16), Vector512.Load(x + i + 16), a1);
        }
        for (; i + 16 <= columns; i += 16)
            a0 = Vector512.FusedMultiplyAdd(TR.Load16(row, i), Vector512.Load(x + i), a0);
        var sum = Vector512.Sum(a0 + a1);
        for (; i < columns; i++) sum += TR.Load1(row, i) * x[i];
        return sum;
    }

    /// <summary>Rows r..r+3 (<paramref name="rowBytes"/> apart) × one token into y[0..3]: four <see cref="Dot1x512{TR}"/> at once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4Rows512<TR>(byte* w0, long rowBytes, int columns, float* x, float* y) where TR : IFloatRow
    {
        byte* w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
        var i = 0;
        for (; i + 32 <= columns; i += 32)
        {
            Prefetch4<TR>(w0, rowBytes, i);
            var u = Vector512.Load(x + i);
            var v = Vector512.Load(x + i + 16);
            a0 = Vector512.FusedMultiplyAdd(TR.Load16(w0, i), u, a0);
            a1 = Vector512.FusedMultiplyAdd(TR.Load16(w1, i), u, a1);
            a2 = Vector512.FusedMultiplyAdd(TR.Load16(w2, i), u, a2);
            a3 = Vector512.FusedMultiplyAdd(TR.Load16(w3, i), u, a3);
            b0 = Vector512.FusedMultiplyAdd(TR.Load16(w0, i + 16), v, b0);
            b1 = Vector512.FusedMultiplyAdd(TR.Load16(w1, i + 16), v, b1);
            b2 = Vector512.FusedMultiplyAdd(TR.Load16(w2, i + 16), v, b2);
            b3 = Vector512.FusedMultiplyAdd(TR.Load16(w3, i + 16), v, b3);
        }
        if (i + 16 <= columns)
        {
            var u = Vector512.Load(x + i);
            a0 = Vector512.FusedMultiplyAdd(TR.Load16(w0, i), u, a0);
            a1 = Vector512.FusedMultiplyAdd(TR.Load16(w1, i), u, a1);
            a2 = Vector512.FusedMultiplyAdd(TR.Load16(w2, i), u, a2);
            a3 = Vector512.FusedMultiplyAdd(TR.Load16(w3, i), u, a3);
            i += 16;
        }
        y[0] = Tail1<TR>(w0, columns, i, x, Vector512.Sum(a0 + b0));
        y[1] = Tail1<TR>(w1, columns, i, x, Vector512.Sum(a1 + b1));
        y[2] = Tail1<TR>(w2, columns, i, x, Vector512.Sum(a2 + b2));
        y[3] = Tail1<TR>(w3, columns, i, x, Vector512.Sum(a3 + b3));
    }

    /// <summary>Rows r..r+3 × one token on 256 bits: four <see cref="Dot1x256{TR}"/> at once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4Rows256<TR>(byte* w0, long rowBytes, int columns, float* x, float* y) where TR : IFloatRow
    {
        byte* w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
        var i = 0;
        for (; i + 16 <= columns; i += 16)
        {
            if ((i & 31) == 0) Prefetch4<TR>(w0, rowBytes, i);
            var u = Vector256.Load(x + i);
            var v = Vector256.Load(x + i + 8);
            a0 = Vector256.FusedMultiplyAdd(TR.Load8(w0, i), u, a0);
            a1 = Vector256.FusedMultiplyAdd(TR.Load8(w1, i), u, a1);
            a2 = Vector256.FusedMultiplyAdd(TR.Load8(w2, i), u, a2);
            a3 = Vector256.FusedMultiplyAdd(TR.Load8(w3, i), u, a3);
            b0 = Vector256.FusedMultiplyAdd(TR.Load8(w0, i + 8), v, b0);
            b1 = Vector256.FusedMultiplyAdd(TR.Load8(w1, i + 8), v, b1);
            b2 = Vector256.FusedMultiplyAdd(TR.Load8(w2, i + 8), v, b2);
            b3 = Vector256.FusedMultiplyAdd(TR.Load8(w3, i + 8), v, b3);
        }
        if (i + 8 <= columns)
        {
            var u = Vector256.Load(x + i);
            a0 = Vector256.FusedMultiplyAdd(TR.Load8(w0, i), u, a0);
            a1 = Vector256.FusedMultiplyAdd(TR.Load8(w1, i), u, a1);
            a2 = Vector256.FusedMultiplyAdd(TR.Load8(w2, i), u, a2);
            a3 = Vector256.FusedMultiplyAdd(TR.Load8(w3, i), u, a3);
            i += 8;
        }
        y[0] = Tail1<TR>(w0, columns, i, x, Vector256.Sum(a0 + b0));
        y[1] = Tail1<TR>(w1, columns, i, x, Vector256.Sum(a1 + b1));
        y[2] = Tail1<TR>(w2, columns, i, x, Vector256.Sum(a2 + b2));
        y[3] = Tail1<TR>(w3, columns, i, x, Vector256.Sum(a3 + b3));
    }

    /// <summary>
    /// Software prefetch of the next 4-row group (4·<paramref name="rowBytes"/> on), at the columns one
    /// 32-column step of this group reads: decode streams matrices larger than the caches, 4 rows at a time.
    /// Measured (bench/run kernels --threads 1 --cpu-time --types f16,bf16 --rows 32768 --cols 2048 --tokens 1,
    /// three alternating pairs at load 44–55): the 256-bit tier F16 5.3–10.6 → 13.2–13.7 GB/s per CPU-second,
    /// BF16 10.8–11.8 → 12.3–13.3; the 512-bit tier within the noise (11.8–13.4 either way; +15 % on F16 in
    /// one earlier pair of runs at load 20). A prefetch past the matrix never faults and changes no result.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch4<TR>(byte* w0, long rowBytes, int i) where TR : IFloatRow
    {
        if (!Sse.IsSupported) return;
        var size = typeof(TR) == typeof(F32Row) ? 4 : 2;
        // Unrolled by hand: the JIT kept a loop of 4 here as a loop (a counter and a branch per prefetch).
        var p = w0 + 4 * rowBytes + (long)i * size;
        Sse.Prefetch0(p);
        Sse.Prefetch0(p + rowBytes);
        Sse.Prefetch0(p + 2 * rowBytes);
        Sse.Prefetch0(p + 3 * rowBytes);
        if (size == 4)
        {
            Sse.Prefetch0(p + 64);
            Sse.Prefetch0(p + rowBytes + 64);
            Sse.Prefetch0(p + 2 * rowBytes + 64);
            Sse.Prefetch0(p + 3 * rowBytes + 64);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Tail1<TR>(byte* row, int columns, int i, float* x, float sum) where TR : IFloatRow
    {
        for (; i < columns; i++) sum += TR.Load1(row, i) * x[i];
        return sum;
    }

    /// <summary>Rows r..r+3 (<paramref name="rowStride"/> floats apart) × tokens t..t+3: y[t·yStride + r].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4x4x512(float* w, long rowStride, int columns, float* x, float* y, int yStride)
    {
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
        float* w1 = w + rowStride, w2 = w1 + rowStride, w3 = w2 + rowStride;
        float* x1 = x + columns, x2 = x1 + columns, x3 = x2 + columns;
        var i = 0;
        for (; i + 16 <= columns; i += 16)
        {
            var v0 = Vector512.Load(w + i);
            var v1 = Vector512.Load(w1 + i);
            var v2 = Vector512.Load(w2 + i);
            var v3 = Vector512.Load(w3 + i);
            var u = Vector512.Load(x + i);
            a00 = Vector512.FusedMultiplyAdd(v0, u, a00);
            a10 = Vector512.FusedMultiplyAdd(v1, u, a10);
            a20 = Vector512.FusedMultiplyAdd(v2, u, a20);
            a30 = Vector512.FusedMultiplyAdd(v3, u, a30);
            u = Vector512.Load(x1 + i);
            a01 = Vector512.FusedMultiplyAdd(v0, u, a01);
            a11 = Vector512.FusedMultiplyAdd(v1, u, a11);
            a21 = Vector512.FusedMultiplyAdd(v2, u, a21);
            a31 = Vector512.FusedMultiplyAdd(v3, u, a31);
            u = Vector512.Load(x2 + i);
            a02 = Vector512.FusedMultiplyAdd(v0, u, a02);
            a12 = Vector512.FusedMultiplyAdd(v1, u, a12);
            a22 = Vector512.FusedMultiplyAdd(v2, u, a22);
            a32 = Vector512.FusedMultiplyAdd(v3, u, a32);
            u = Vector512.Load(x3 + i);
            a03 = Vector512.FusedMultiplyAdd(v0, u, a03);
            a13 = Vector512.FusedMultiplyAdd(v1, u, a13);
            a23 = Vector512.FusedMultiplyAdd(v2, u, a23);
            a33 = Vector512.FusedMultiplyAdd(v3, u, a33);
        }
        Tail4<F32Row>((byte*)w, columns, i, x, x1, x2, x3, Vector512.Sum(a00), Vector512.Sum(a01), Vector512.Sum(a02), Vector512.Sum(a03), y, yStride);
        Tail4<F32Row>((byte*)w1, columns, i, x, x1, x2, x3, Vector512.Sum(a10), Vector512.Sum(a11), Vector512.Sum(a12), Vector512.Sum(a13), y + 1, yStride);
        Tail4<F32Row>((byte*)w2, columns, i, x, x1, x2, x3, Vector512.Sum(a20), Vector512.Sum(a21), Vector512.Sum(a22), Vector512.Sum(a23), y + 2, yStride);
        Tail4<F32Row>((byte*)w3, columns, i, x, x1, x2, x3, Vector512.Sum(a30), Vector512.Sum(a31), Vector512.Sum(a32), Vector512.Sum(a33), y + 3, yStride);
    }

    /// <summary>One row's 4 token sums finished: the vector sums, then the last columns one by one, stored.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tail4<TR>(byte* row, int columns, int i, float* x, float* x1, float* x2, float* x3,
        float s0, float s1, float s2, float s3, float* y, int yStride) where TR : IFloatRow
    {
        for (; i < columns; i++)
        {
            var wi = TR.Load1(row, i);
            s0 += wi * x[i];
            s1 += wi * x1[i];
            s2 += wi * x2[i];
            s3 += wi * x3[i];
        }
        y[0] = s0;
        y[yStride] = s1;
        y[2L * yStride] = s2;
        y[3L * yStride] = s3;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4x256<TR>(byte* row, int columns, float* x, float* y, int yStride) where TR : IFloatRow
    {
        var a0 = Vector256<float>.Zero;
        var a1 = Vector256<float>.Zero;
        var a2 = Vector256<float>.Zero;
        var a3 = Vector256<float>.Zero;
        float* x1 = x + columns, x2 = x1 + columns, x3 = x2 + columns;
        var i = 0;
        for (; i + 8 <= columns; i += 8)
        {
            var wv = TR.Load8(row, i);
            a0 = Vector256.FusedMultiplyAdd(wv, Vector256.Load(x + i), a0);
            a1 = Vector256.FusedMultiplyAdd(wv, Vector256.Load(x1 + i), a1);
            a2 = Vector256.FusedMultiplyAdd(wv, Vector256.Load(x2 + i), a2);
            a3 = Vector256.FusedMultiplyAdd(wv, Vector256.Load(x3 + i), a3);
        }
        Tail4<TR>(row, columns, i, x, x1, x2, x3, Vector256.Sum(a0), Vector256.Sum(a1), Vector256.Sum(a2), Vector256.Sum(a3), y, yStride);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4x512<TR>(byte* row, int columns, float* x, float* y, int yStride) where TR : IFloatRow
    {
        var a0 = Vector512<float>.Zero;
        var a1 = Vector512<float>.Zero;
        var a2 = Vector512<float>.Zero;
        var a3 = Vector512<float>.Zero;
        float* x1 = x + columns, x2 = x1 + columns, x3 = x2 + columns;
        var i = 0;
        for (; i + 16 <= columns; i += 16)
        {
            var wv = TR.Load16(row, i);
            a0 = Vector512.FusedMultiplyAdd(wv, Vector512.Load(x + i), a0);
            a1 = Vector512.FusedMultiplyAdd(wv, Vector512.Load(x1 + i), a1);
            a2 = Vector512.FusedMultiplyAdd(wv, Vector512.Load(x2 + i), a2);
            a3 = Vector512.FusedMultiplyAdd(wv, Vector512.Load(x3 + i), a3);
        }
        Tail4<TR>(row, columns, i, x, x1, x2, x3, Vector512.Sum(a0), Vector512.Sum(a1), Vector512.Sum(a2), Vector512.Sum(a3), y, yStride);
    }
}
