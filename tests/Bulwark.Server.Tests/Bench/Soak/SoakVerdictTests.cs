using Bulwark.Bench.Http;
using Bulwark.Bench.Soak;

namespace Bulwark.Server.Tests.Bench.Soak;

/// <summary>The soak's verdict from samples whose drift, slope and p99 are worked out by hand.</summary>
public sealed class SoakVerdictTests
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public void RssDriftIsMaxMinusMinOverMinAfterWarmupOnly()
    {
        // Warm-up to 20 s: the idle reading and the ramp before it are not judged.
        var samples = Samples((0, 80), (10, 150), (20, 200), (30, 210), (40, 205), (50, 208));
        var verdict = SoakVerdict.Of(samples, warmupSeconds: 20);
        Assert.Equal(4, verdict.Samples);
        Assert.Equal(200 * MiB, verdict.Rss.MinBytes);
        Assert.Equal(210 * MiB, verdict.Rss.MaxBytes);
        Assert.Equal(0.05, verdict.Rss.Drift!.Value, 12);
        Assert.True(verdict.RssFlat); // exactly 5 % is within 5 %
    }

    [Fact]
    public void TheJudgedWindowRunsFromTheFirstJudgedSampleToTheLast()
    {
        // Warm-up ends at 15 s: the samples at 20..50 s are judged, a window of 30 s; one sample judges no window.
        var samples = Samples((0, 80), (10, 150), (20, 200), (30, 210), (40, 205), (50, 208));
        Assert.Equal(30, SoakVerdict.Of(samples, warmupSeconds: 15).JudgedSeconds);
        Assert.Equal(0, SoakVerdict.Of(samples, warmupSeconds: 50).JudgedSeconds);
        Assert.Equal(0, SoakVerdict.Of(samples, warmupSeconds: 51).JudgedSeconds);
    }

    [Fact]
    public void DriftJustOverFivePercentIsNotFlat()
    {
        var verdict = SoakVerdict.Of(Samples((10, 1000), (20, 1051)), warmupSeconds: 0);
        Assert.Equal(0.051, verdict.Rss.Drift!.Value, 12);
        Assert.False(verdict.RssFlat);
    }

    [Fact]
    public void TheIdleReadingBeforeTheLoadIsNeverJudged()
    {
        var verdict = SoakVerdict.Of(Samples((0, 80), (10, 200), (20, 200)), warmupSeconds: 0);
        Assert.Equal(2, verdict.Samples);
        Assert.Equal(0, verdict.Rss.Drift);
    }

    [Fact]
    public void RssOutsideTheGcIsRssLessCommittedSoTheGcSawtoothLeavesItFlat()
    {
        // The GC commits 100 MiB more, then gives it back: RSS moves by that, the rest stays at 600 MiB.
        var samples = new List<SoakSample>
        {
            Sample(10, 700 * MiB, committed: 100 * MiB),
            Sample(20, 800 * MiB, committed: 200 * MiB),
            Sample(30, 706 * MiB, committed: 100 * MiB),
        };
        var verdict = SoakVerdict.Of(samples, warmupSeconds: 0);
        Assert.False(verdict.RssFlat);
        Assert.Equal(600 * MiB, verdict.OutsideGc.MinBytes);
        Assert.Equal(606 * MiB, verdict.OutsideGc.MaxBytes);
        Assert.Equal(0.01, verdict.OutsideGc.Drift!.Value, 12);
    }

    [Fact]
    public void SlopeOfASteadyRampIsItsRateInMiBPerHour()
    {
        // 1 MiB every 36 s is 100 MiB an hour; the heap grows half as fast.
        var samples = Enumerable.Range(1, 10).Select(i => Sample(i * 36, (300 + i) * MiB, heap: (50 * MiB) + i * MiB / 2)).ToList();
        var verdict = SoakVerdict.Of(samples, warmupSeconds: 0);
        Assert.Equal(100, verdict.RssSlopeMiBPerHour!.Value, 9);
        Assert.Equal(50, verdict.HeapSlopeMiBPerHour!.Value, 9);
    }

    [Fact]
    public void P99DriftComparesTheLastWindowWithTheFirstAfterWarmupThatCompletedARequest()
    {
        var samples = new List<SoakSample>
        {
            Sample(10, 100 * MiB, p99: 5.0), // warm-up
            Sample(20, 100 * MiB, p99: null), // nothing completed in this window
            Sample(30, 100 * MiB, p99: 0.8),
            Sample(40, 100 * MiB, p99: 0.9),
            Sample(50, 100 * MiB, p99: 1.0),
        };
        var verdict = SoakVerdict.Of(samples, warmupSeconds: 15);
        Assert.Equal(0.8, verdict.P99FirstSeconds);
        Assert.Equal(1.0, verdict.P99LastSeconds);
        Assert.Equal(0.25, verdict.P99Drift!.Value, 12);
    }

    [Fact]
    public void TheFifthsCompareMediansSoOneSlowWindowDoesNotSwingThem()
    {
        // Ten windows: fifths of two. The last window is slow; the median of the last fifth (nearest rank) is not.
        double[] p99 = [1.0, 1.2, 0.9, 1.1, 1.0, 1.0, 1.1, 0.9, 1.1, 3.0];
        var samples = p99.Select((p, i) => Sample(10 * (i + 1), 100 * MiB, p99: p)).ToList();
        var verdict = SoakVerdict.Of(samples, warmupSeconds: 0);
        Assert.Equal(2.0, verdict.P99Drift!.Value, 12);
        Assert.Equal(1.0, verdict.P99FirstFifthSeconds);
        Assert.Equal(1.1, verdict.P99LastFifthSeconds);
        Assert.Equal(0.1, verdict.P99FifthDrift!.Value, 12);
    }

    [Fact]
    public void TooFewSamplesAfterWarmupGiveNoVerdict()
    {
        var verdict = SoakVerdict.Of(Samples((10, 100), (20, 300)), warmupSeconds: 15);
        Assert.Equal(1, verdict.Samples);
        Assert.Null(verdict.Rss.Drift);
        Assert.Null(verdict.RssSlopeMiBPerHour);
        Assert.Null(verdict.P99Drift);
        Assert.False(verdict.RssFlat);
    }

    private static List<SoakSample> Samples(params (double Seconds, long RssMiB)[] points) =>
        points.Select(p => Sample(p.Seconds, p.RssMiB * MiB)).ToList();

    private static SoakSample Sample(double seconds, long rss, long heap = 64 * MiB, double? p99 = 0.5, long? committed = null)
    {
        var server = new ServerReading(rss, Threads: 20, OpenFiles: 100, heap, CommittedBytes: committed ?? heap, Gen0: 0, Gen1: 0, Gen2: 0, AllocatedBytes: 0);
        var latency = p99 is { } p ? new Percentiles(10, p / 2, p, p) : Percentiles.Of([]);
        return new SoakSample(seconds, server, new ClientInterval(latency.Count, 0, 0, 0, latency, null));
    }
}
