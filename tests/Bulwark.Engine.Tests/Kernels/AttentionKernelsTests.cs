using Bulwark.Engine.Kernels.Cpu;

namespace Bulwark.Engine.Tests.Kernels;

/// <summary>
/// The attention inner loops on every instruction-set path this CPU runs, against plain loops in
/// double precision, on head sizes and position counts around the vector widths and the 8- and
/// 4-position unrolls, with rows further apart than a head (as in a cache of several KV heads).
/// </summary>
public unsafe class AttentionKernelsTests
{
    private static readonly int[] HeadDims = [1, 8, 12, 16, 24, 48, 64, 80, 128];
    private static readonly int[] Counts = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33];

    public static TheoryData<InstructionSet> Paths()
    {
        var data = new TheoryData<InstructionSet>();
        foreach (var isa in Enum.GetValues<InstructionSet>())
            if (KernelIsa.IsSupported(isa)) data.Add(isa);
        return data;
    }

    private static float[] Random(Random random, int n) => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();

    private static void Close(double expected, float actual, string what) =>
        Assert.True(Math.Abs(expected - actual) <= 1e-5 * Math.Max(1, Math.Abs(expected)), $"{what}: expected {expected}, got {actual}");

    [Theory]
    [MemberData(nameof(Paths))]
    public void ScoresEqualPlainDotProducts(InstructionSet isa)
    {
        var random = new Random(1);
        foreach (var d in HeadDims)
            foreach (var n in Counts)
            {
                var stride = 3 * d + 5;
                var q = Random(random, d);
                var k = Random(random, n * stride);
                var s = new float[n + 1];
                s[n] = 42; // past the end: untouched
                float max;
                fixed (float* pq = q)
                fixed (float* pk = k)
                fixed (float* ps = s)
                    max = AttentionKernels.Scores(pq, pk, stride, n, d, 0.25f, ps, isa);
                var expectedMax = double.NegativeInfinity;
                for (var t = 0; t < n; t++)
                {
                    var dot = 0.0;
                    for (var i = 0; i < d; i++) dot += (double)q[i] * k[t * stride + i];
                    Close(dot * 0.25, s[t], $"{isa} d={d} n={n} t={t}");
                    expectedMax = Math.Max(expectedMax, s[t]);
                }
                Assert.Equal((float)expectedMax, max);
                Assert.Equal(42, s[n]);
            }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void ExponentialsEqualMathExpAndSumThem(InstructionSet isa)
    {
        var random = new Random(2);
        foreach (var n in Counts.Append(100))
        {
            var s = Random(random, n).Select(x => x * 20).ToArray();
            var max = s.Max();
            var expected = s.Select(x => Math.Exp(x - max)).ToArray();
            float sum;
            fixed (float* ps = s) sum = AttentionKernels.Exponentials(ps, n, max, isa);
            for (var t = 0; t < n; t++) Close(expected[t], s[t], $"{isa} n={n} t={t}");
            Close(expected.Sum(), sum, $"{isa} n={n} sum");
        }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void WeightedSumEqualsPlainLoopsFreshAndRescaled(InstructionSet isa)
    {
        var random = new Random(3);
        foreach (var d in HeadDims)
            foreach (var n in Counts)
                foreach (var keep in new[] { 0f, 0.375f, 1f })
                {
                    var stride = 2 * d + 3;
                    var v = Random(random, n * stride);
                    var w = Random(random, n);
                    var o = Random(random, d + 1);
                    var before = o.ToArray();
                    fixed (float* pv = v)
                    fixed (float* pw = w)
                    fixed (float* po = o)
                        AttentionKernels.WeightedSum(pv, stride, n, d, pw, keep, po, isa);
                    for (var i = 0; i < d; i++)
                    {
                        var sum = keep == 0 ? 0.0 : (double)before[i] * keep;
                        for (var t = 0; t < n; t++) sum += (double)w[t] * v[t * stride + i];
                        Close(sum, o[i], $"{isa} d={d} n={n} keep={keep} i={i}");
                    }
                    Assert.Equal(before[d], o[d]); // past the head: untouched
                }
    }
}
