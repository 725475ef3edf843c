using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// The three inner loops of attention for one query head over a run of cached positions (rows
/// <c>stride</c> floats apart): scores q·k, the softmax exponentials, and the weighted sum of the
/// values. Shared by the contiguous cache (<see cref="Attention"/>) and the paged one.
/// </summary>
/// <remarks>
/// Perf: one position at a time, a 64-float dot product is a chain of dependent FMAs ending in a
/// horizontal sum, and the value sum loads and stores the output once per position; together they
/// cost about 50 cycles per (token, head, position), a tenth of TinyLlama's prefill and decode at a
/// 512-token context. Here eight positions run side by side (eight independent chains, q loaded once
/// for all), the exponentials are vectorised, and the value sum keeps its partial sums in registers
/// across positions. Each path is tested against <see cref="InstructionSet.Scalar"/>.
/// </remarks>
public static unsafe class AttentionKernels
{
    /// <summary>s[t] = scale · (q · k[t]) for t in [0, n), k[t] at <paramref name="k"/> + t·<paramref name="stride"/>; returns the largest.</summary>
    public static float Scores(float* q, float* k, long stride, int n, int headDim, float scale, float* s, InstructionSet isa)
    {
        var t = 0;
        if (isa >= InstructionSet.Avx512 && headDim % 16 == 0 && Vector512.IsHardwareAccelerated)
            t = Scores512(q, k, stride, n, headDim, scale, s);
        else if (isa > InstructionSet.Scalar && headDim % 8 == 0 && Vector256.IsHardwareAccelerated)
            t = Scores256(q, k, stride, n, headDim, scale, s);
        for (; t < n; t++)
        {
            var kt = k + t * stride;
            var dot = 0f;
            for (var i = 0; i < headDim; i++) dot += q[i] * kt[i];
            s[t] = dot * scale;
        }
        var max = float.NegativeInfinity;
        for (t = 0; t < n; t++) max = MathF.Max(max, s[t]);
        return max;
    }

    private static int Scores512(float* q, float* k, long stride, int n, int headDim, float scale, float* s)
    {
        var t = 0;
        for (; t + 8 <= n; t += 8)
        {
            var k0 = k + t * stride;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            for (var i = 0; i < headDim; i += 16)
            {
                var qv = Vector512.Load(q + i);
                var ki = k0 + i;
                Ahead(ki, stride);
                a0 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(ki), a0);
                a1 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(ki + stride), a1);
                a2 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(ki + 2 * stride), a2);
                a3 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(ki + 3 * stride), a3);
                a4 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(ki + 4 * stride), a4);
                a5 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(ki + 5 * stride), a5);
                a6 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(ki + 6 * stride), a6);
                a7 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(ki + 7 * stride), a7);
            }
            s[t] = Vector512.Sum(a0) * scale;
            s[t + 1] = Vector512.Sum(a1) * scale;
            s[t + 2] = Vector512.Sum(a2) * scale;
            s[t + 3] = Vector512.Sum(a3) * scale;
            s[t + 4] = Vector512.Sum(a4) * scale;
            s[t + 5] = Vector512.Sum(a5) * scale;
            s[t + 6] = Vector512.Sum(a6) * scale;
            s[t + 7] = Vector512.Sum(a7) * scale;
        }
        for (; t < n; t++)
        {
            var kt = k + t * stride;
            var a = Vector512<float>.Zero;
            for (var i = 0; i < headDim; i += 16) a = Vector512.FusedMultiplyAdd(Vector512.Load(q + i), Vector512.Load(kt + i), a);
            s[t] = Vector512.Sum(a) * scale;
        }
        return n;
    }

    private static int Scores256(float* q, float* k, long stride, int n, int headDim, float scale, float* s)
    {
        var t = 0;
        for (; t + 4 <= n; t += 4)
        {
            var k0 = k + t * stride;
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (var i = 0; i < headDim; i += 8)
            {
                var qv = Vector256.Load(q + i);
                var ki = k0 + i;
                a0 = Vector256.FusedMultiplyAdd(qv, Vector256.Load(ki), a0);
                a1 = Vector256.FusedMultiplyAdd(qv, Vector256.Load(ki + stride), a1);
                a2 = Vector256.FusedMultiplyAdd(qv, Vector256.Load(ki + 2 * stride), a2);
                a3 = Vector256.FusedMultiplyAdd(qv, Vector256.Load(ki + 3 * stride), a3);
            }
            s[t] = Vector256.Sum(a0) * scale;
            s[t + 1] = Vector256.Sum(a1) * scale;
            s[t + 2] = Vector256.Sum(a2) * scale;
            s[t + 3] = Vector256.Sum(a3) * scale;
        }
        for (; t < n; t++)
        {
            var kt = k + t * stride;
            var a = Vector256<float>.Zero;
            for (var i = 0; i < headDim; i += 8) a = Vector256.FusedMultiplyAdd(Vector256.Load(q + i), Vector256.Load(kt + i), a);
            s[t] = Vector256.Sum(a) * scale;
        }
        return n;
    }

    /// <summary>Positions requested ahead of use: a head's rows are short runs a whole cache row apart, which the hardware prefetcher does not follow.</summary>
    private const int Lookahead = 16;

    /// <summary>This line of the 8 rows <see cref="Lookahead"/> positions on.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Ahead(float* line, long stride)
    {
        var p = line + Lookahead * stride;
        for (var r = 0; r < 8; r++) Sse.Prefetch0(p + r * stride);
    }

    /// <summary>s[t] = exp(s[t] − max) for t in [0, n); returns their sum.</summary>
    public static float Exponentials(float* s, int n, float max, InstructionSet isa)
    {
        var t = 0;
        var sum = 0f;
        if (isa > InstructionSet.Scalar && Vector256.IsHardwareAccelerated)
        {
            var m = Vector256.Create(max);
            var acc = Vector256<float>.Zero;
            for (; t + 8 <= n; t += 8)
            {
                var e = Vector256.Exp(Vector256.Load(s + t) - m);
                e.Store(s + t);
                acc += e;
            }
            sum = Vector256.Sum(acc);
        }
        for (; t < n; t++)
        {
            var e = MathF.Exp(s[t] - max);
            s[t] = e;
            sum += e;
        }
        return sum;
    }

    /// <summary>o = o·<paramref name="keep"/> + Σ w[t]·v[t] for t in [0, n), v[t] at <paramref name="v"/> + t·<paramref name="stride"/> (keep 0 starts afresh).</summary>
    public static void WeightedSum(float* v, long stride, int n, int headDim, float* w, float keep, float* o, InstructionSet isa)
    {
        var i = 0;
        if (isa >= InstructionSet.Avx512 && headDim % 16 == 0 && Vector512.IsHardwareAccelerated)
        {
            // Two 16-float columns at a time, each with two partial sums (even and odd positions):
            // four independent FMA chains instead of one per column.
            for (; i + 32 <= headDim; i += 32)
            {
                Vector512<float> a0 = default, a1 = default, b0 = default, b1 = default;
                var t = 0;
                for (; t + 2 <= n; t += 2)
                {
                    var vt = v + t * stride + i;
                    Sse.Prefetch0(vt + Lookahead * stride);
                    Sse.Prefetch0(vt + Lookahead * stride + 16);
                    Sse.Prefetch0(vt + (Lookahead + 1) * stride);
                    Sse.Prefetch0(vt + (Lookahead + 1) * stride + 16);
                    var w0 = Vector512.Create(w[t]);
                    var w1 = Vector512.Create(w[t + 1]);
                    a0 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(vt), a0);
                    b0 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(vt + 16), b0);
                    a1 = Vector512.FusedMultiplyAdd(w1, Vector512.Load(vt + stride), a1);
                    b1 = Vector512.FusedMultiplyAdd(w1, Vector512.Load(vt + stride + 16), b1);
                }
                if (t < n)
                {
                    var vt = v + t * stride + i;
                    var w0 = Vector512.Create(w[t]);
                    a0 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(vt), a0);
                    b0 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(vt + 16), b0);
                }
                Finish(o + i, a0 + a1, keep);
                Finish(o + i + 16, b0 + b1, keep);
            }
            for (; i < headDim; i += 16)
            {
                Vector512<float> a0 = default, a1 = default;
                var t = 0;
                for (; t + 2 <= n; t += 2)
                {
                    var vt = v + t * stride + i;
                    a0 = Vector512.FusedMultiplyAdd(Vector512.Create(w[t]), Vector512.Load(vt), a0);
                    a1 = Vector512.FusedMultiplyAdd(Vector512.Create(w[t + 1]), Vector512.Load(vt + stride), a1);
                }
                if (t < n) a0 = Vector512.FusedMultiplyAdd(Vector512.Create(w[t]), Vector512.Load(v + t * stride + i), a0);
                Finish(o + i, a0 + a1, keep);
            }
            return;
        }
        if (isa > InstructionSet.Scalar && Vector256.IsHardwareAccelerated)
        {
            for (; i + 16 <= headDim; i += 16)
            {
                Vector256<float> a0 = default, a1 = default, b0 = default, b1 = default;
                var t = 0;
                for (; t + 2 <= n; t += 2)
                {
                    var vt = v + t * stride + i;
                    var w0 = Vector256.Create(w[t]);
                    var w1 = Vector256.Create(w[t + 1]);
                    a0 = Vector256.FusedMultiplyAdd(w0, Vector256.Load(vt), a0);
                    b0 = Vector256.FusedMultiplyAdd(w0, Vector256.Load(vt + 8), b0);
                    a1 = Vector256.FusedMultiplyAdd(w1, Vector256.Load(vt + stride), a1);
                    b1 = Vector256.FusedMultiplyAdd(w1, Vector256.Load(vt + stride + 8), b1);
                }
                if (t < n)
                {
                    var vt = v + t * stride + i;
                    var w0 = Vector256.Create(w[t]);
                    a0 = Vector256.FusedMultiplyAdd(w0, Vector256.Load(vt), a0);
                    b0 = Vector256.FusedMultiplyAdd(w0, Vector256.Load(vt + 8), b0);
                }
                Finish(o + i, a0 + a1, keep);
                Finish(o + i + 8, b0 + b1, keep);
            }
            for (; i + 8 <= headDim; i += 8)
            {
                var a = Vector256<float>.Zero;
                for (var t = 0; t < n; t++) a = Vector256.FusedMultiplyAdd(Vector256.Create(w[t]), Vector256.Load(v + t * stride + i), a);
                Finish(o + i, a, keep);
            }
        }
        for (; i < headDim; i++)
        {
            var sum = 0f;
            for (var t = 0; t < n; t++) sum += w[t] * v[t * stride + i];
            o[i] = keep == 0 ? sum : o[i] * keep + sum;
        }
    }

    /// <summary>
    /// One block of <paramref name="n"/> positions of the online softmax for one query head: scores into
    /// <paramref name="s"/>, then the running maximum, sum and output are rescaled when the block raises the
    /// maximum (on the first block, max = -inf, the factor is 0 and the output starts afresh) and the
    /// block's weighted values are added. The caller divides the output by the final sum.
    /// </summary>
    public static void OnlineBlock(float* q, float* k, float* v, long stride, int n, int headDim, float scale, float* s,
        ref float max, ref float sum, float* o, InstructionSet isa)
    {
        var blockMax = Scores(q, k, stride, n, headDim, scale, s, isa);
        var newMax = MathF.Max(max, blockMax);
        var keep = MathF.Exp(max - newMax);
        max = newMax;
        sum = sum * keep + Exponentials(s, n, newMax, isa);
        WeightedSum(v, stride, n, headDim, s, keep, o, isa);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish(float* o, Vector512<float> sum, float keep) =>
        (keep == 0 ? sum : Vector512.FusedMultiplyAdd(Vector512.Load(o), Vector512.Create(keep), sum)).Store(o);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish(float* o, Vector256<float> sum, float keep) =>
        (keep == 0 ? sum : Vector256.FusedMultiplyAdd(Vector256.Load(o), Vector256.Create(keep), sum)).Store(o);
}
