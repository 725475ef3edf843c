using Bulwark.Engine.Evaluation;

namespace Bulwark.Engine.Tests.Evaluation;

public class LogitComparisonTests
{
    [Fact]
    public void CosineOfIdenticalRowsIsOneAndOfOrthogonalRowsZero()
    {
        Assert.Equal(1, LogitComparison.Cosine([1f, 2f, 3f], [1f, 2f, 3f]), 12);
        Assert.Equal(1, LogitComparison.Cosine([1f, 2f, 3f], [2f, 4f, 6f]), 12);
        Assert.Equal(0, LogitComparison.Cosine([1f, 0f], [0f, 5f]), 12);
        Assert.Equal(-1, LogitComparison.Cosine([1f, -1f], [-1f, 1f]), 12);
    }

    [Fact]
    public void KlDivergenceMatchesTheHandComputedValue()
    {
        // P = softmax(0, 0) = (1/2, 1/2); Q = softmax(ln 3, 0) = (3/4, 1/4).
        // KL(P‖Q) = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3).
        Assert.Equal(0.5 * Math.Log(4.0 / 3.0), LogitComparison.KlDivergence([0f, 0f], [MathF.Log(3f), 0f]), 6);
        Assert.Equal(0, LogitComparison.KlDivergence([5f, 1f, -2f], [5f, 1f, -2f]), 12);
        // A constant shift changes no probability.
        Assert.Equal(0, LogitComparison.KlDivergence([5f, 1f, -2f], [105f, 101f, 98f]), 9);
    }

    [Fact]
    public void KlDivergenceStaysFiniteForLargeLogits()
    {
        var kl = LogitComparison.KlDivergence([1000f, 0f], [0f, 1000f]);
        Assert.True(double.IsFinite(kl) && kl > 900, $"KL was {kl}");
    }

    [Fact]
    public void ArgmaxPicksTheFirstOfTies()
    {
        Assert.Equal(1, LogitComparison.Argmax([0f, 3f, 3f, 1f]));
        Assert.Throws<ArgumentException>(() => LogitComparison.Argmax([]));
    }

    [Fact]
    public void RowsOfDifferentLengthAreRefused()
    {
        Assert.Throws<ArgumentException>(() => LogitComparison.Cosine([1f], [1f, 2f]));
        Assert.Throws<ArgumentException>(() => LogitComparison.KlDivergence([], []));
    }
}
