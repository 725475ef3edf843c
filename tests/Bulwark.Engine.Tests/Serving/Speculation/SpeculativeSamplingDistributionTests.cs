using Xunit.Abstractions;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Serving.Speculation;
using static Bulwark.Engine.Tests.Serving.EngineHarness;

namespace Bulwark.Engine.Tests.Serving.Speculation;

/// <summary>
/// Speculative sampling keeps the target distribution: the first four tokens of many seeded speculative
/// samples on an 8-token model are tested against their exact joint distribution, computed independently
/// from the model's own log-probabilities one position at a time (no speculation involved).
/// </summary>
public class SpeculativeSamplingDistributionTests(ITestOutputHelper output)
{
    private const int Vocab = 8;
    private const int Length = 4;
    private static readonly int[] Prompt = [1, 2, 3, 1, 2, 3, 1, 2];

    // Chi-square goodness of fit at a false-failure rate of 1e-6 for a random seed; the seeds here are fixed, so
    // the outcome is the same on every run (it cannot flake). A cell with expected count below 5 is pooled.
    private const double Z = 4.753; // one-sided standard normal quantile for 1e-6

    [Fact]
    public async Task TheFirstTokensOfSpeculativeSamplesFollowTheModelsExactJointDistribution()
    {
        // Drafts share the prefill cap while sequences decode; a cap as large as the budget lets all 64 running
        // sequences draft every step, for enough accepted and rejected drafts to test.
        using var engine = new LlmEngine(new PagedToyModel(Vocab), new EngineOptions
        {
            KvCacheBlocks = 4096, BlockSize = 4, Scheduler = new Bulwark.Engine.Serving.Scheduling.SchedulerOptions { MaxPrefillTokensWhileDecoding = 512 },
        });
        var exact = await ExactJointAsync(engine);
        Assert.Equal(1.0, exact.Values.Sum(), 6);

        var spec = new SpeculativeConfig { NumSpeculativeTokens = 2, PromptLookupMax = 2 };
        var samples = await SampleAsync(engine, 10_000, seed0: 0, temperature: 1f, spec);
        Assert.True(engine.Counters.AcceptedDraftTokens > 1000, $"only {engine.Counters.AcceptedDraftTokens} drafts accepted");
        Assert.True(engine.Counters.DraftTokens - engine.Counters.AcceptedDraftTokens > 1000, "too few drafts rejected");
        var (statistic, critical) = ChiSquare(samples, exact);
        output.WriteLine($"speculative T=1: chi-square {statistic:F1}, critical {critical:F1}; drafted {engine.Counters.DraftTokens}, accepted {engine.Counters.AcceptedDraftTokens}");
        Assert.True(statistic < critical, $"chi-square {statistic:F1} ≥ critical {critical:F1}: speculative samples do not follow the target distribution");

        // The test can fail: samples of another distribution (temperature 0.8) are rejected by the same statistic.
        var other = await SampleAsync(engine, 10_000, seed0: 1_000_000, temperature: 0.8f, spec);
        var (otherStatistic, otherCritical) = ChiSquare(other, exact);
        output.WriteLine($"T=0.8 against T=1: chi-square {otherStatistic:F1}, critical {otherCritical:F1}");
        Assert.True(otherStatistic > otherCritical, $"chi-square {otherStatistic:F1} < critical {otherCritical:F1}: the test cannot tell temperatures apart");
    }

    /// <summary>P(t1..t4) as the product of each position's probabilities, read from logprobs of every token (top_logprobs = V).</summary>
    private static async Task<Dictionary<int, double>> ExactJointAsync(LlmEngine engine)
    {
        var joint = new Dictionary<int, double>();
        async Task Walk(int[] prefix, int key, double probability, int depth)
        {
            if (depth == Length)
            {
                joint[key] = probability;
                return;
            }
            var next = await CollectAsync(engine, new EngineRequest
            {
                PromptTokens = [.. Prompt, .. prefix],
                Sampling = new SamplingParams { Temperature = 0, MaxTokens = 1, IgnoreEos = true, TopLogprobs = Vocab },
            });
            foreach (var alternative in next[0].TopLogprobs!)
                await Walk([.. prefix, alternative.TokenId], key * Vocab + alternative.TokenId, probability * Math.Exp(alternative.Logprob), depth + 1);
        }
        await Walk([], 0, 1.0, 0);
        return joint;
    }

    private static async Task<Dictionary<int, int>> SampleAsync(LlmEngine engine, int count, int seed0, float temperature, SpeculativeConfig spec)
    {
        var counts = new Dictionary<int, int>();
        for (var start = 0; start < count; start += 256)
        {
            var batch = Enumerable.Range(start, Math.Min(256, count - start)).Select(i => CollectAsync(engine, new EngineRequest
            {
                PromptTokens = Prompt,
                Sampling = new SamplingParams { Temperature = temperature, Seed = seed0 + i, MaxTokens = Length, IgnoreEos = true },
                Speculative = spec,
            }));
            foreach (var events in await Task.WhenAll(batch))
            {
                var key = Ids(events).Aggregate(0, (k, t) => k * Vocab + t);
                counts[key] = counts.GetValueOrDefault(key) + 1;
            }
        }
        return counts;
    }

    private static (double Statistic, double Critical) ChiSquare(Dictionary<int, int> observed, Dictionary<int, double> exact)
    {
        var n = observed.Values.Sum();
        double statistic = 0, pooledExpected = 0, pooledObserved = 0;
        var cells = 0;
        foreach (var (key, p) in exact)
        {
            var expected = p * n;
            var seen = observed.GetValueOrDefault(key);
            if (expected < 5)
            {
                pooledExpected += expected;
                pooledObserved += seen;
                continue;
            }
            statistic += (seen - expected) * (seen - expected) / expected;
            cells++;
        }
        if (pooledExpected > 0)
        {
            statistic += (pooledObserved - pooledExpected) * (pooledObserved - pooledExpected) / pooledExpected;
            cells++;
        }
        // Wilson–Hilferty approximation of the chi-square quantile with cells − 1 degrees of freedom.
        var df = cells - 1.0;
        var h = 2.0 / (9.0 * df);
        var critical = df * Math.Pow(1 - h + Z * Math.Sqrt(h), 3);
        return (statistic, critical);
    }
}
