using Bulwark.Engine.Randomness;
using Bulwark.Engine.Serving.Sampling;

namespace Bulwark.Engine.Tests.Serving;

public class SamplerTests
{
    private static readonly float[] Logits = [MathF.Log(1f), MathF.Log(2f), MathF.Log(3f), MathF.Log(4f)]; // softmax = .1 .2 .3 .4

    private static float[] DistributionOf(SamplingParams p, float[]? logits = null, int[]? prompt = null, int[]? output = null)
    {
        var sampler = new Sampler(4);
        var adjusted = sampler.Adjust(logits ?? Logits, p, prompt ?? [], output ?? []);
        var d = sampler.Distribution(adjusted, p).ToArray();
        var sum = d.Sum();
        return d.Select(x => x / sum).ToArray();
    }

    private static void Near(double[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-5, $"p[{i}] = {actual[i]}, expected {expected[i]}");
    }

    [Fact]
    public void TemperatureOneIsTheSoftmax() => Near([.1, .2, .3, .4], DistributionOf(new SamplingParams()));

    [Fact]
    public void TemperatureHalfSquaresTheProbabilities() =>
        Near([1 / 30.0, 4 / 30.0, 9 / 30.0, 16 / 30.0], DistributionOf(new SamplingParams { Temperature = 0.5f }));

    [Theory]
    [InlineData(1, new[] { 0, 0, 0, 1.0 })]
    [InlineData(2, new[] { 0, 0, 3 / 7.0, 4 / 7.0 })]
    [InlineData(3, new[] { 0, 2 / 9.0, 3 / 9.0, 4 / 9.0 })]
    [InlineData(4, new[] { .1, .2, .3, .4 })]
    [InlineData(0, new[] { .1, .2, .3, .4 })]
    public void TopKKeepsTheKMostLikely(int k, double[] expected) => Near(expected, DistributionOf(new SamplingParams { TopK = k }));

    [Theory]
    [InlineData(0.4f, new[] { 0, 0, 0, 1.0 })]       // .4 alone reaches .4
    [InlineData(0.41f, new[] { 0, 0, 3 / 7.0, 4 / 7.0 })] // needs .4 + .3
    [InlineData(0.7f, new[] { 0, 0, 3 / 7.0, 4 / 7.0 })]
    [InlineData(0.71f, new[] { 0, 2 / 9.0, 3 / 9.0, 4 / 9.0 })]
    [InlineData(1f, new[] { .1, .2, .3, .4 })]
    public void TopPKeepsTheSmallestSetReachingP(float topP, double[] expected) => Near(expected, DistributionOf(new SamplingParams { TopP = topP }));

    [Fact]
    public void TopPAppliesToWhatTopKKept() =>
        // top-k 3 renormalizes to 2/9, 3/9, 4/9; top-p .5 then needs 4/9 + 3/9.
        Near([0, 0, 3 / 7.0, 4 / 7.0], DistributionOf(new SamplingParams { TopK = 3, TopP = 0.5f }));

    [Theory]
    [InlineData(0.5f, new[] { 0, 2 / 9.0, 3 / 9.0, 4 / 9.0 })]  // threshold .2: .2 stays
    [InlineData(0.51f, new[] { 0, 0, 3 / 7.0, 4 / 7.0 })]       // threshold .204
    [InlineData(1f, new[] { 0, 0, 0, 1.0 })]
    public void MinPDropsTokensBelowAFractionOfTheBest(float minP, double[] expected) => Near(expected, DistributionOf(new SamplingParams { MinP = minP }));

    [Fact]
    public void LogitBiasAddsToTheLogit() =>
        // token 0: log 1 + log 4 = log 4 → weights 4,2,3,4 over 13.
        Near([4 / 13.0, 2 / 13.0, 3 / 13.0, 4 / 13.0], DistributionOf(new SamplingParams { LogitBias = new Dictionary<int, float> { [0] = MathF.Log(4f) } }));

    [Fact]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOnce()
    {
        float[] logits = [2f, -1f, 0.5f, 1f];
        var p = new SamplingParams { RepetitionPenalty = 2f };
        var adjusted = new Sampler(4).Adjust(logits, p, prompt: [0, 0, 1], output: [1, 0]).ToArray();
        Assert.Equal([1f, -2f, 0.5f, 1f], adjusted);
    }

    [Fact]
    public void FrequencyAndPresencePenaltiesCountOnlyTheOutput()
    {
        float[] logits = [1f, 1f, 1f, 1f];
        var p = new SamplingParams { FrequencyPenalty = 0.5f, PresencePenalty = 0.25f };
        var adjusted = new Sampler(4).Adjust(logits, p, prompt: [3, 3, 3], output: [0, 2, 0, 0]).ToArray();
        // token 0: 1 - 3×0.5 - 0.25; token 2: 1 - 0.5 - 0.25; token 3 only in the prompt.
        Assert.Equal([-0.75f, 1f, 0.25f, 1f], adjusted);
    }

    [Fact]
    public void PenaltiesLeaveNoStateBehindForTheNextCall()
    {
        var sampler = new Sampler(4);
        var p = new SamplingParams { RepetitionPenalty = 2f, FrequencyPenalty = 1f };
        sampler.Adjust([1f, 1f, 1f, 1f], p, [0], [1]);
        var second = sampler.Adjust([1f, 1f, 1f, 1f], p, [], [2]).ToArray();
        Assert.Equal([1f, 1f, -0.5f, 1f], second);
    }

    [Fact]
    public void GreedyPicksTheLargestAdjustedLogitAndTheLowestIdOnTies()
    {
        var sampler = new Sampler(4);
        var random = new SplitMixRandom(1);
        Assert.Equal(3, sampler.Sample(Logits, new SamplingParams { Temperature = 0 }, [], [], ref random, out _, []));
        Assert.Equal(1, sampler.Sample([0f, 5f, 5f, 1f], new SamplingParams { Temperature = 0 }, [], [], ref random, out _, []));
        Assert.Equal(0, sampler.Sample(Logits, new SamplingParams { Temperature = 0, LogitBias = new Dictionary<int, float> { [0] = 10f } }, [], [], ref random, out _, []));
    }

    [Fact]
    public void DrawFollowsTheCumulativeDistribution()
    {
        float[] w = [0.1f, 0f, 0.3f, 0.6f];
        Assert.Equal(0, Sampler.Draw(w, 0.0));
        Assert.Equal(0, Sampler.Draw(w, 0.0999));
        Assert.Equal(2, Sampler.Draw(w, 0.1001));
        Assert.Equal(2, Sampler.Draw(w, 0.3999));
        Assert.Equal(3, Sampler.Draw(w, 0.4001));
        Assert.Equal(3, Sampler.Draw(w, 0.99999999));
    }

    [Fact]
    public void SampledFrequenciesMatchTheDistribution()
    {
        var sampler = new Sampler(4);
        var random = new SplitMixRandom(42);
        var counts = new int[4];
        const int draws = 40_000;
        for (var i = 0; i < draws; i++)
            counts[sampler.Sample(Logits, new SamplingParams(), [], [], ref random, out _, [])]++;
        for (var t = 0; t < 4; t++)
            Assert.InRange(counts[t] / (double)draws, (t + 1) / 10.0 - 0.015, (t + 1) / 10.0 + 0.015);
    }

    [Fact]
    public void SeededSamplingIsReproducibleAndChoicesDiffer()
    {
        int[] Run(long seed, int choice)
        {
            var sampler = new Sampler(4);
            var random = new SplitMixRandom(SplitMixRandom.DeriveSeed(seed, choice));
            return Enumerable.Range(0, 64).Select(_ => sampler.Sample(Logits, new SamplingParams(), [], [], ref random, out float _, [])).ToArray();
        }
        Assert.Equal(Run(7, 0), Run(7, 0));
        Assert.NotEqual(Run(7, 0), Run(7, 1));
        Assert.NotEqual(Run(7, 0), Run(8, 0));
    }

    [Fact]
    public void LogprobsAreOfTheRawDistributionWithTopAlternativesBestFirst()
    {
        var sampler = new Sampler(4);
        var random = new SplitMixRandom(3);
        var top = new TokenLogprob[2];
        var p = new SamplingParams { Temperature = 0, Logprobs = true, TopLogprobs = 2, LogitBias = new Dictionary<int, float> { [0] = 50f } };
        var token = sampler.Sample(Logits, p, [], [], ref random, out var logprob, top);
        Assert.Equal(0, token);
        Assert.Equal(Math.Log(0.1), logprob, 5);
        Assert.Equal(3, top[0].TokenId);
        Assert.Equal(Math.Log(0.4), top[0].Logprob, 5);
        Assert.Equal(2, top[1].TokenId);
        Assert.Equal(Math.Log(0.3), top[1].Logprob, 5);
    }

    [Theory]
    [InlineData(-0.01f, false)]
    [InlineData(0f, true)]
    [InlineData(100f, true)]
    [InlineData(100.01f, false)]
    public void TemperatureIsValidatedAtItsLimits(float temperature, bool valid) =>
        CheckValid(new SamplingParams { Temperature = temperature }, valid, "Temperature");

    [Theory]
    [InlineData(-1, false)]
    [InlineData(0, true)]
    [InlineData(4, true)]
    [InlineData(5, false)]
    public void TopKIsValidatedAgainstTheVocabulary(int k, bool valid) => CheckValid(new SamplingParams { TopK = k }, valid, "top_k");

    [Theory]
    [InlineData(0, false)]
    [InlineData(1, true)]
    [InlineData(128, true)]
    [InlineData(129, false)]
    public void ChoiceCountIsValidatedAtItsLimits(int n, bool valid) => CheckValid(new SamplingParams { N = n }, valid, "n must be");

    [Theory]
    [InlineData(20, true)]
    [InlineData(21, false)]
    public void TopLogprobsIsValidatedAtItsLimit(int n, bool valid) => CheckValid(new SamplingParams { TopLogprobs = n }, valid, "top_logprobs");

    [Theory]
    [InlineData(3, true)]
    [InlineData(4, false)]
    public void LogitBiasTokenMustBeInTheVocabulary(int token, bool valid) =>
        CheckValid(new SamplingParams { LogitBias = new Dictionary<int, float> { [token] = 1f } }, valid, "logit_bias");

    private static void CheckValid(SamplingParams p, bool valid, string messagePart)
    {
        if (valid)
        {
            p.Validate(4);
            return;
        }
        var ex = Assert.ThrowsAny<ArgumentException>(() => p.Validate(4));
        Assert.Contains(messagePart, ex.Message);
    }
}
