using System.Diagnostics;
using Bulwark.Engine.Randomness;
using Bulwark.Engine.Serving.Sampling;

namespace Bulwark.Bench;

/// <summary>
/// Microseconds per sampled token over a 32,000-token vocabulary: the sampler as it runs (heap cut, draw over
/// the kept tokens) against what it did before (every probability sorted with <c>Array.Sort</c>, the dropped
/// ones zeroed, the draw over the whole vocabulary). Process CPU time, one thread.
/// </summary>
internal static class SamplerBench
{
    public static int Run(string[] args)
    {
        var a = new BenchArgs(args);
        var vocab = a.Int("vocab", 32000, 2, 1 << 20);
        var steps = a.Int("steps", 2000, 1, 1_000_000);
        var random = new Random(5);
        var rows = Enumerable.Range(0, 64).Select(_ => Enumerable.Range(0, vocab).Select(_ => (float)(random.NextDouble() * 12 - 6)).ToArray()).ToArray();
        Console.WriteLine($"vocabulary {vocab}, {steps} tokens per setting, microseconds per token (process CPU time)");
        Console.WriteLine($"{"setting",-26} {"heap cut",10} {"full sort",10}");
        foreach (var (name, p) in new (string, SamplingParams)[]
                 {
                     ("top_k 40", new() { TopK = 40, Temperature = 0.8f }),
                     ("top_p 0.9", new() { TopP = 0.9f, Temperature = 0.8f }),
                     ("top_k 40 + top_p 0.95", new() { TopK = 40, TopP = 0.95f, Temperature = 0.8f }),
                     ("no cut (softmax + draw)", new() { Temperature = 0.8f }),
                 })
        {
            var sampler = new Sampler(vocab);
            var rng = new SplitMixRandom(1);
            var fast = Time(steps, i => sampler.Sample(rows[i % rows.Length], p, [], [], ref rng, out _, []));
            var before = new SortedSampler(vocab);
            var plain = new SamplingParams { Temperature = p.Temperature };
            var rng2 = new SplitMixRandom(1);
            var slow = Time(steps, i => before.Sample(sampler, rows[i % rows.Length], p, plain, ref rng2));
            Console.WriteLine($"{name,-26} {fast,10:F1} {slow,10:F1}");
        }
        return 0;
    }

    private static double Time(int steps, Func<int, int> step)
    {
        for (var i = 0; i < Math.Min(steps, 50); i++) step(i); // JIT
        using var process = Process.GetCurrentProcess();
        var cpu = process.TotalProcessorTime;
        var sink = 0;
        for (var i = 0; i < steps; i++) sink += step(i);
        process.Refresh();
        GC.KeepAlive(sink);
        return (process.TotalProcessorTime - cpu).TotalMicroseconds / steps;
    }

    /// <summary>The sampler's cut as it was before the heap: softmax, a sort of the whole vocabulary, zeroing, a full draw.</summary>
    private sealed class SortedSampler(int vocab)
    {
        private readonly float[] _keys = new float[vocab];
        private readonly int[] _order = new int[vocab];
        private readonly float[] _probs = new float[vocab];

        public int Sample(Sampler sampler, float[] logits, SamplingParams p, SamplingParams plain, ref SplitMixRandom random)
        {
            var probs = _probs.AsSpan();
            sampler.Distribution(sampler.Adjust(logits, plain, [], []), plain).CopyTo(probs);
            var n = probs.Length;
            if (!((p.TopK > 0 && p.TopK < n) || p.TopP < 1f)) return Sampler.Draw(probs, random.NextDouble()); // it sorted only to cut
            for (var i = 0; i < n; i++)
            {
                _keys[i] = -probs[i];
                _order[i] = i;
            }
            Array.Sort(_keys, _order, 0, n);
            var keep = p.TopK > 0 ? Math.Min(p.TopK, n) : n;
            if (p.TopP < 1f)
            {
                double kept = 0;
                for (var r = 0; r < keep; r++) kept += probs[_order[r]];
                double cumulative = 0;
                var r2 = 0;
                while (r2 < keep)
                {
                    cumulative += probs[_order[r2++]];
                    if (cumulative >= p.TopP * kept - 1e-6) break;
                }
                keep = r2;
            }
            for (var r = keep; r < n; r++) probs[_order[r]] = 0f;
            return Sampler.Draw(probs, random.NextDouble());
        }
    }
}
