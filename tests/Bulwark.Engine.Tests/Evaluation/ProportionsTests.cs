using Bulwark.Engine.Evaluation;

namespace Bulwark.Engine.Tests.Evaluation;

public class ProportionsTests
{
    private static readonly double Z95 = Proportions.Z(0.95);

    [Fact]
    public void TheNinetyFivePercentQuantileIsTheTabulatedOne()
    {
        // Φ⁻¹(0.975) = 1.959963984540054, Φ⁻¹(0.95) = 1.644853626951472, Φ⁻¹(0.995) = 2.575829303548901 (normal tables);
        // the rational approximation is good to ~1e-9.
        Assert.Equal(1.959963984540054, Z95, 1e-8);
        Assert.Equal(1.644853626951472, Proportions.Z(0.90), 1e-8);
        Assert.Equal(2.575829303548901, Proportions.Z(0.99), 1e-8);
        Assert.Throws<ArgumentOutOfRangeException>(() => Proportions.Z(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Proportions.Z(0.5));
    }

    [Theory]
    // Newcombe 1998 (Statist. Med. 17:857), Table II, method 3 (Wilson score), to the four decimals published.
    [InlineData(81, 263, 0.2553, 0.3662)]
    [InlineData(15, 148, 0.0624, 0.1605)]
    [InlineData(0, 20, 0.0000, 0.1611)]
    [InlineData(1, 29, 0.0061, 0.1718)]
    public void WilsonMatchesNewcombesPublishedIntervals(int successes, int n, double lower, double upper)
    {
        var interval = Proportions.Wilson(successes, n, Z95);
        Assert.Equal((double)successes / n, interval.Estimate, 12);
        Assert.Equal(lower, interval.Lower, 4);
        Assert.Equal(upper, interval.Upper, 4);
    }

    [Fact]
    public void WilsonMatchesTheFormulaComputedByHand()
    {
        // 7 of 40 at z = 1.96 exactly: p = 0.175, z² = 3.8416,
        // centre = (0.175 + 3.8416/80) / (1 + 3.8416/40) = 0.22302 / 1.09604 = 0.2034780,
        // half = 1.96 √(0.175·0.825/40 + 3.8416/6400) / 1.09604 = 1.96 · 0.0648817 / 1.09604 = 0.1160249.
        var interval = Proportions.Wilson(7, 40, 1.96);
        Assert.Equal(0.2034780 - 0.1160249, interval.Lower, 1e-6);
        Assert.Equal(0.2034780 + 0.1160249, interval.Upper, 1e-6);
    }

    [Fact]
    public void WilsonTouchesZeroAndOneExactlyAndRefusesImpossibleCounts()
    {
        Assert.Equal(0, Proportions.Wilson(0, 5, Z95).Lower);
        Assert.Equal(1, Proportions.Wilson(5, 5, Z95).Upper);
        Assert.Throws<ArgumentOutOfRangeException>(() => Proportions.Wilson(0, 0, Z95));
        Assert.Throws<ArgumentOutOfRangeException>(() => Proportions.Wilson(6, 5, Z95));
        Assert.Throws<ArgumentOutOfRangeException>(() => Proportions.Wilson(-1, 5, Z95));
    }

    [Fact]
    public void ThePairedDifferenceMatchesTheTextbookExample()
    {
        // Fagerland, Lydersen & Laake, Statistical Analysis of Contingency Tables (2017), ch. 8: complete
        // response before/after consolidation therapy (Cavo et al. 2012), a=59 b=6 c=16 d=80, Newcombe
        // square-and-add: estimate −0.0621, 95% CI −0.1186 to −0.0046.
        var interval = Proportions.PairedDifference(new PairedCounts(59, 6, 16, 80), Z95);
        Assert.Equal(-10.0 / 161, interval.Estimate, 12);
        Assert.Equal(-0.1186, interval.Lower, 4);
        Assert.Equal(-0.0046, interval.Upper, 4);
    }

    [Fact]
    public void ThePairedDifferenceMatchesTheFormulaComputedByHand()
    {
        // a=10 b=4 c=0 d=6, n=20, z=1.96: p1 = 0.7, p2 = 0.5, difference 0.2.
        // ad − bc = 60 > n/2, so φ = (60 − 10)/√(14·6·10·10) = 50/91.6515 = 0.545545.
        // Wilson(14, 20): 0.481023 .. 0.854525; Wilson(10, 20): 0.299295 .. 0.700705 (computed like the test above).
        // lower = 0.2 − √(0.218977² − 2φ·0.218977·0.200705 + 0.200705²) = 0.2 − 0.200699
        // upper = 0.2 + √(0.200705² − 2φ·0.200705·0.154525 + 0.154525²) = 0.2 + 0.174131
        var (l1, u1) = Bounds(14, 20);
        var (l2, u2) = Bounds(10, 20);
        Assert.Equal(0.481023, l1, 1e-6);
        Assert.Equal(0.700705, u2, 1e-6);
        var phi = 50 / Math.Sqrt(14.0 * 6 * 10 * 10);
        var below = Math.Sqrt(Math.Pow(0.7 - l1, 2) - 2 * phi * (0.7 - l1) * (u2 - 0.5) + Math.Pow(u2 - 0.5, 2));
        var above = Math.Sqrt(Math.Pow(0.5 - l2, 2) - 2 * phi * (0.5 - l2) * (u1 - 0.7) + Math.Pow(u1 - 0.7, 2));

        var interval = Proportions.PairedDifference(new PairedCounts(10, 4, 0, 6), 1.96);
        Assert.Equal(0.2, interval.Estimate, 12);
        Assert.Equal(0.2 - below, interval.Lower, 9);
        Assert.Equal(0.2 + above, interval.Upper, 9);
        Assert.Equal(-0.000699, interval.Lower, 1e-6);
        Assert.Equal(0.374131, interval.Upper, 1e-6);

        static (double, double) Bounds(int x, int n)
        {
            // Wilson's formula written out again, independently of Proportions.Wilson.
            double p = (double)x / n, z = 1.96;
            var centre = (p + z * z / (2 * n)) / (1 + z * z / n);
            var half = z * Math.Sqrt(p * (1 - p) / n + z * z / (4.0 * n * n)) / (1 + z * z / n);
            return (centre - half, centre + half);
        }
    }

    [Fact]
    public void IdenticalJudgementsGiveADifferenceOfZeroWithAnIntervalAroundIt()
    {
        var interval = Proportions.PairedDifference(new PairedCounts(30, 0, 0, 50), Z95);
        Assert.Equal(0, interval.Estimate);
        Assert.True(interval.Lower < 0 && interval.Upper > 0);
        // All yes (or all no) on both sides: φ is 0 by convention and the interval still stays in [−1, 1].
        var all = Proportions.PairedDifference(new PairedCounts(20, 0, 0, 0), Z95);
        Assert.Equal((0, true, true), (all.Estimate, all.Lower <= 0 && all.Lower >= -1, all.Upper >= 0 && all.Upper <= 1));
    }

    [Fact]
    public void PairedCountsTallyEachCell()
    {
        var counts = PairedCounts.Of([(true, true), (true, false), (true, false), (false, true), (false, false)]);
        Assert.Equal(new PairedCounts(1, 2, 1, 1), counts);
        Assert.Equal(5, counts.Total);
    }
}
