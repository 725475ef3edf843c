using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// float16 weights at the cost of a sign extension, a shift and a mask: the half's sign, exponent and
/// mantissa moved into float32's fields without rebiasing the exponent, so the float32 read is the
/// half times 2^-112, exactly, for every finite half (a subnormal half becomes a subnormal float).
/// The activations are multiplied by 2^112 once per call (<see cref="HalfKernels.TryScale"/>), so
/// each product w'·x' is exactly w·x and every sum equals <see cref="F16Row"/>'s bit for bit, with
/// 3 vector operations per 16 weights instead of 13.
/// <para>
/// Perf: .NET 10 exposes no F16C (<c>vcvtph2ps</c>) nor AVX-512 BF16/FP16 intrinsic (checked by
/// reflection over System.Runtime.Intrinsics.X86 on this runtime), so the conversion is integer code;
/// the exact rebiasing of <see cref="F16Row"/> made F16 decode compute-bound at 7–8 GB/s per core
/// where BF16 streamed 20. Re-checked on .NET 10.0.12 on a Zen 5 whose /proc/cpuinfo lists avx512_bf16
/// and f16c: still no such class, and Avx10v1/Avx10v2 report unsupported. This path streams F16 as fast
/// as BF16 and F32 there (27–29 GB/s per core from memory, 58 from L2: memory-bound, docs/engine.md).
/// </para>
/// An infinite or NaN half reads as a finite 2^16·1.m: rows are only run through this path after
/// <see cref="HalfKernels.AllFinite"/> found none (a model with such weights keeps the exact path).
/// </summary>
internal unsafe struct F16ScaledRow : IFloatRow
{
    /// <summary>Clears the three copies of the sign that the sign extension left in bits 28–30.</summary>
    private const int Mask = unchecked((int)0x8FFFFFFF);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* row, int i)
    {
        Vector256<int> v;
        if (Avx2.IsSupported) v = Avx2.ConvertToVector256Int32((short*)row + i);
        else
        {
            var (lo, hi) = Vector128.Widen(Vector128.Load((short*)row + i));
            v = Vector256.Create(lo, hi);
        }
        return (Vector256.ShiftLeft(v, 13) & Vector256.Create(Mask)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(byte* row, int i)
    {
        Vector512<int> v;
        if (Avx512F.IsSupported) v = Avx512F.ConvertToVector512Int32(Vector256.Load((short*)row + i));
        else
        {
            var (lo, hi) = Vector256.Widen(Vector256.Load((short*)row + i));
            v = Vector512.Create(lo, hi);
        }
        return (Vector512.ShiftLeft(v, 13) & Vector512.Create(Mask)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1(byte* row, int i) => BitConverter.Int32BitsToSingle((((short*)row)[i] << 13) & Mask);
}

/// <summary>The activation scaling and the weight check that <see cref="F16ScaledRow"/> relies on.</summary>
internal static unsafe class HalfKernels
{
    /// <summary>2^112: a half's exponent bias (15) against float32's (127).</summary>
    public const float Scale = 5.192296858534828e+33f;

    /// <summary>
    /// Largest |x| the scaled activations hold without overflowing: x·2^112 stays finite below 2^16
    /// (float32's range ends at 2^128). A finite activation at or above it keeps the call on the exact path.
    /// </summary>
    public const float MaxActivation = 65536f;

    /// <summary>
    /// destination = x·2^112 for <paramref name="count"/> floats; false (destination partly written) when a
    /// finite |x| ≥ 2^16 would overflow. Infinities and NaNs scale to themselves, as w·x would treat them.
    /// </summary>
    public static bool TryScale(float* x, long count, float* destination)
    {
        long i = 0;
        var scale = Vector256.Create(Scale);
        var limit = Vector256.Create(MaxActivation);
        var infinity = Vector256.Create(float.PositiveInfinity);
        var tooLarge = Vector256<float>.Zero;
        for (; i + 8 <= count; i += 8)
        {
            var v = Vector256.Load(x + i);
            var a = Vector256.Abs(v);
            tooLarge |= Vector256.GreaterThanOrEqual(a, limit) & ~Vector256.Equals(a, infinity);
            (v * scale).Store(destination + i);
        }
        if (tooLarge != Vector256<float>.Zero) return false;
        for (; i < count; i++)
        {
            var a = MathF.Abs(x[i]);
            if (a >= MaxActivation && !float.IsInfinity(a)) return false;
            destination[i] = x[i] * Scale;
        }
        return true;
    }

    /// <summary>
    /// This thread's buffer for <paramref name="count"/> scaled activations (grown, never shrunk; pinned
    /// so worker threads read it through a pointer).
    /// </summary>
    public static float* ScaledScratch(long count)
    {
        var buffer = _scaled;
        if (buffer == null || buffer.Length < count)
            _scaled = buffer = GC.AllocateUninitializedArray<float>(checked((int)Math.Max(count, (buffer?.Length ?? 0) * 2L)), pinned: true);
        return (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(buffer));
    }

    [ThreadStatic] private static float[]? _scaled;

    /// <summary>Whether none of <paramref name="count"/> halves is an infinity or NaN (all five exponent bits set).</summary>
    public static bool AllFinite(ushort* halves, long count)
    {
        long i = 0;
        var exponent = Vector256.Create((ushort)0x7C00);
        var found = Vector256<ushort>.Zero;
        for (; i + 16 <= count; i += 16)
            found |= Vector256.Equals(Vector256.Load(halves + i) & exponent, exponent);
        if (found != Vector256<ushort>.Zero) return false;
        for (; i < count; i++)
            if ((halves[i] & 0x7C00) == 0x7C00) return false;
        return true;
    }

    /// <summary><see cref="AllFinite(ushort*, long)"/> of a whole matrix, in slices on the worker pool.</summary>
    public static bool AllFinite(ushort* halves, long count, WorkerPool pool)
    {
        const long slice = 1 << 20;
        var job = new FiniteJob { Halves = halves, Count = count, Slice = slice };
        pool.Run(&FiniteSlice, &job, checked((int)((count + slice - 1) / slice)));
        return job.Found == 0;
    }

    private struct FiniteJob
    {
        public ushort* Halves;
        public long Count, Slice;
        public int Found;
    }

    private static void FiniteSlice(void* context, int item)
    {
        var job = (FiniteJob*)context;
        var start = item * job->Slice;
        if (!AllFinite(job->Halves + start, Math.Min(job->Slice, job->Count - start))) Volatile.Write(ref job->Found, 1);
    }
}
