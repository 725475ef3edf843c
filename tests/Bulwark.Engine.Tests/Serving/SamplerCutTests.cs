using Bulwark.Engine.Randomness;
using Bulwark.Engine.Serving.Sampling;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>
/// The heap-based top-k/top-p cut (<see cref="Sampler.Cut"/>) against its full-sort twin
/// (<see cref="Sampler.CutBySort"/>), and the draw over the kept tokens against the draw over the whole
/// zeroed distribution.
/// </summary>
public class SamplerCutTests
{
    /// <summary>Random probabilities with many exact ties (values from a small set) and some zeros, normalized.</summary>
    private static float[] RandomProbs(Random random, int n, bool ties)
    {
        var values = new float[n];
        for (var i = 0; i < n; i++)
            values[i] = ties ? random.Next(0, 6) / 8f : (random.Next(10) == 0 ? 0f : (float)random.NextDouble());
        if (values.All(v => v == 0f)) values[random.Next(n)] = 1f;
        var sum = values.Sum(v => (double)v);
        for (var i = 0; i < n; i++) values[i] = (float)(values[i] / sum);
        return values;
    }

    private static int[] Fast(float[] probs, SamplingParams p)
    {
        var heap = new int[probs.Length];
        var ranked = new int[probs.Length];
        return ranked[..Sampler.Cut(probs, p, heap, ranked)];
    }

    private static int[] Slow(float[] probs, SamplingParams p)
    {
        var ranked = new int[probs.Length];
        return ranked[..Sampler.CutBySort(probs, p, ranked)];
    }

    [Theory]
    [InlineData(1, 0, 1f)]
    [InlineData(7, 0, 1f)]
    [InlineData(64, 1, 1f)]
    [InlineData(64, 5, 1f)]
    [InlineData(64, 63, 1f)]  // k below the vocabulary
    [InlineData(64, 64, 1f)]  // k at it
    [InlineData(64, 65, 1f)]  // k above it (Validate refuses it for requests; the cut clamps)
    [InlineData(64, 0, 0.5f)]
    [InlineData(64, 0, 0.95f)]
    [InlineData(64, 10, 0.7f)]
    [InlineData(64, 64, 0.3f)]
    [InlineData(1000, 40, 0.9f)]
    [InlineData(1000, 0, 0.99f)]
    [InlineData(1000, 0, 1e-7f)]
    public void TheHeapCutRanksAndCutsAsTheFullSort(int n, int k, float topP)
    {
        var random = new Random(n * 31 + k * 7 + (int)(topP * 1000));
        for (var trial = 0; trial < 50; trial++)
        {
            var probs = RandomProbs(random, n, ties: trial % 2 == 0);
            var p = new SamplingParams { TopK = k, TopP = topP };
            Assert.Equal(Slow(probs, p), Fast(probs, p));
        }
    }

    [Fact]
    public void TiesRankTheLowerIdFirst()
    {
        float[] probs = [0.25f, 0.125f, 0.25f, 0.125f, 0.25f];
        Assert.Equal([0, 2], Fast(probs, new SamplingParams { TopK = 2 }));
        Assert.Equal([0, 2, 4, 1], Fast(probs, new SamplingParams { TopK = 4 }));
    }

    [Fact]
    public void ZeroProbabilitiesAreNeverKept()
    {
        float[] probs = [0f, 0.5f, 0f, 0.5f];
        Assert.Equal([1, 3], Fast(probs, new SamplingParams { TopK = 3 }));
        Assert.Equal([1, 3], Slow(probs, new SamplingParams { TopK = 3 }));
    }

    [Fact]
    public void ANaNIsRefusedByBoth()
    {
        float[] probs = [0.5f, float.NaN, 0.5f];
        var p = new SamplingParams { TopK = 1 };
        Assert.Throws<InvalidOperationException>(() => Fast(probs, p));
        Assert.Throws<InvalidOperationException>(() => Slow(probs, p));
        Assert.Throws<InvalidOperationException>(() => Fast(probs, new SamplingParams { TopP = 0.5f }));
    }

    [Fact]
    public void ANaNLogitFailsSamplingWithTopK()
    {
        var sampler = new Sampler(3);
        var random = new SplitMixRandom(1);
        Assert.Throws<InvalidOperationException>(() =>
            sampler.Sample([1f, float.NaN, 2f], new SamplingParams { TopK = 2 }, [], [], ref random, out _, []));
    }

    [Theory]
    [InlineData(0, 1f, 0f)]
    [InlineData(40, 1f, 0f)]
    [InlineData(0, 0.9f, 0f)]
    [InlineData(40, 0.9f, 0f)]
    [InlineData(40, 0.9f, 0.05f)]
    [InlineData(2000, 1f, 0f)]
    public void SamplingDrawsTheTokenTheZeroedDistributionWould(int k, float topP, float minP)
    {
        const int vocab = 2000;
        var random = new Random(k + (int)(topP * 100));
        var sampler = new Sampler(vocab);
        var twin = new Sampler(vocab);
        var p = new SamplingParams { TopK = k, TopP = topP, MinP = minP, Temperature = 0.8f };
        var rng = new SplitMixRandom(99);
        for (var step = 0; step < 200; step++)
        {
            var logits = new float[vocab];
            for (var i = 0; i < vocab; i++) logits[i] = step % 3 == 0 ? random.Next(4) : (float)(random.NextDouble() * 8);
            var copy = rng;
            var u = copy.NextDouble();
            var expected = Sampler.Draw(twin.Distribution(twin.Adjust(logits, p, [], []), p), u);
            Assert.Equal(expected, sampler.Sample(logits, p, [], [], ref rng, out _, []));
        }
    }
}
