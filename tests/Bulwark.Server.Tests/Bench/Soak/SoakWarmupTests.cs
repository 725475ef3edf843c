using Bulwark.Bench.Http;
using Bulwark.Bench.Soak;

namespace Bulwark.Server.Tests.Bench.Soak;

/// <summary>
/// The soak's own warm-up: the verdict window opens at the first sample after every KV block was
/// handed out at least once and a gen2 collection finished after the sample that first saw that.
/// </summary>
public sealed class SoakWarmupTests
{
    [Fact]
    public void WarmupEndsAtTheFirstSampleWithAGen2AfterTheKvCacheWasFullyUsed()
    {
        var samples = Samples(
            (0, 0, 0),     // idle
            (10, 40, 1),   // a gen2, but the cache is not full
            (20, 99, 2),
            (30, 100, 2),  // full: gen2 count 2 here
            (40, 100, 2),  // no gen2 since
            (50, 100, 3),  // this one
            (60, 100, 4));
        Assert.Equal(50, SoakWarmup.End(samples));
    }

    [Fact]
    public void AGen2CountedInTheIntervalTheCacheFilledDoesNotEndIt()
    {
        // The gen2 between 10 s and 20 s may have run before the last block was used: not enough.
        var samples = Samples((10, 90, 0), (20, 100, 1), (30, 100, 1));
        Assert.Null(SoakWarmup.End(samples));
    }

    [Fact]
    public void WithoutAGen2WarmupEndsFiveMinutesAfterTheCacheWasFullyUsed()
    {
        // Full at 20 s; no gen2 after it: 310 s is still waiting (290 s), 320 s is 300 s on.
        var samples = Samples((10, 90, 1), (20, 100, 1), (310, 100, 1), (320, 100, 1), (330, 100, 1));
        Assert.Equal(320, SoakWarmup.End(samples));
        Assert.Null(SoakWarmup.End(samples.Take(3).ToList()));
        // A gen2 before the five minutes are up ends it at once.
        Assert.Equal(310, SoakWarmup.End(Samples((10, 90, 1), (20, 100, 1), (310, 100, 2), (320, 100, 2))));
    }

    [Fact]
    public void AKvCacheNeverFullyUsedNeverEndsIt()
    {
        var samples = Samples((10, 50, 1), (20, 99, 5), (30, 99, 9));
        Assert.Null(SoakWarmup.End(samples));
    }

    [Fact]
    public void AReadingWithoutKvBlocksNeverCountsAsFull()
    {
        var samples = new List<SoakSample> { Sample(10, blocks: 0, touched: 0, gen2: 1), Sample(20, blocks: 0, touched: 0, gen2: 2) };
        Assert.Null(SoakWarmup.End(samples));
    }

    [Fact]
    public void TheIdleReadingIsNeverTheStartEvenIfItLooksFull()
    {
        var samples = new List<SoakSample> { Sample(0, blocks: 4, touched: 4, gen2: 0), Sample(10, blocks: 4, touched: 4, gen2: 1) };
        Assert.Null(SoakWarmup.End(samples)); // full first seen at 10 s; no gen2 after it
    }

    [Fact]
    public void TheVerdictJudgesOnlyTheSamplesFromTheWarmupEnd()
    {
        var samples = Samples((10, 50, 0), (20, 100, 0), (30, 100, 1), (40, 100, 1));
        var verdict = SoakVerdict.Of(samples, SoakWarmup.End(samples)!.Value);
        Assert.Equal(30, verdict.WarmupSeconds);
        Assert.Equal(2, verdict.Samples);
    }

    private static List<SoakSample> Samples(params (double Seconds, long Touched, long Gen2)[] points) =>
        points.Select(p => Sample(p.Seconds, blocks: 100, p.Touched, p.Gen2)).ToList();

    private static SoakSample Sample(double seconds, long blocks, long touched, long gen2)
    {
        var server = new ServerReading(300L << 20, 20, 100, 64L << 20, 80L << 20, 0, 0, gen2, 0, blocks, touched);
        return new SoakSample(seconds, server, new ClientInterval(0, 0, 0, 0, Percentiles.Of([]), null));
    }
}
