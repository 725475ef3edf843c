using Bulwark.Bench.Http;

namespace Bulwark.Bench.Soak;

/// <summary>One sampling tick of a soak: seconds since the load started, the server's reading then, and what the clients saw since the last tick.</summary>
internal sealed record SoakSample(double Seconds, ServerReading Server, ClientInterval Clients);

/// <summary>A quantity's range over the judged samples and its drift, <c>(max − min) / min</c> (null with fewer than two samples).</summary>
internal readonly record struct ByteRange(long MinBytes, long MaxBytes, double? Drift)
{
    public static ByteRange Of(IReadOnlyList<long> values) =>
        values.Count < 2 ? new ByteRange(values.FirstOrDefault(), values.FirstOrDefault(), null)
            : new ByteRange(values.Min(), values.Max(), values.Min() > 0 ? (double)(values.Max() - values.Min()) / values.Min() : null);
}

/// <summary>
/// What a soak's samples say once warm-up is over (samples taken at or after
/// <see cref="WarmupSeconds"/>; the idle reading before the load, at 0 s, is never judged):
/// <list type="bullet">
/// <item>the judged window's length: from the first judged sample to the last (<see cref="JudgedSeconds"/>),
/// which the goal wants at least 30 minutes long;</item>
/// <item>the RSS drift <c>(max − min) / min</c> and whether it is within <see cref="FlatLimit"/>;</item>
/// <item>the same for the RSS outside the GC heap (RSS − GC committed bytes: native memory such as the
/// KV cache, code, thread stacks), which the GC's sawtooth does not move, so a native leak shows there;</item>
/// <item>the least-squares slope of RSS and of the GC heap, in MiB per hour, to tell a trend from a sawtooth;</item>
/// <item>the p99 drift, <c>(last − first) / first</c> over the first and last post-warm-up intervals that
/// completed a request, and the same over the medians of the first and last fifth of those intervals,
/// which one slow interval on a busy machine does not swing (medians by nearest rank).</item>
/// </list>
/// Null where too few samples (or latency windows) are left to compare.
/// </summary>
internal sealed record SoakVerdict(
    double WarmupSeconds, int Samples, double JudgedSeconds, ByteRange Rss, ByteRange OutsideGc, double? RssSlopeMiBPerHour, double? HeapSlopeMiBPerHour,
    double? P99FirstSeconds, double? P99LastSeconds, double? P99FirstFifthSeconds, double? P99LastFifthSeconds)
{
    /// <summary>The goal of issue 21: RSS flat within 5 % after warm-up.</summary>
    public const double FlatLimit = 0.05;

    public bool RssFlat => Rss.Drift is { } drift && drift <= FlatLimit;

    public double? P99Drift => Drift(P99FirstSeconds, P99LastSeconds);

    public double? P99FifthDrift => Drift(P99FirstFifthSeconds, P99LastFifthSeconds);

    public static SoakVerdict Of(IReadOnlyList<SoakSample> samples, double warmupSeconds)
    {
        var after = samples.Where(s => s.Seconds > 0 && s.Seconds >= warmupSeconds).ToList();
        var p99 = after.Where(s => s.Clients.Latency.Count > 0).Select(s => s.Clients.Latency.P99).ToList();
        var fifth = Math.Max(1, p99.Count / 5);
        return new SoakVerdict(warmupSeconds, after.Count, after.Count >= 2 ? after[^1].Seconds - after[0].Seconds : 0,
            ByteRange.Of(after.Select(s => s.Server.RssBytes).ToList()), ByteRange.Of(after.Select(s => s.Server.RssBytes - s.Server.CommittedBytes).ToList()),
            Slope(after, s => s.Server.RssBytes), Slope(after, s => s.Server.HeapBytes),
            p99.Count >= 2 ? p99[0] : null, p99.Count >= 2 ? p99[^1] : null,
            p99.Count >= 2 ? Percentiles.Of(p99.GetRange(0, fifth)).P50 : null, p99.Count >= 2 ? Percentiles.Of(p99.GetRange(p99.Count - fifth, fifth)).P50 : null);
    }

    private static double? Drift(double? first, double? last) => first is > 0 && last is { } l ? (l - first.Value) / first.Value : null;

    /// <summary>Least-squares slope of <paramref name="bytes"/> over time, in MiB per hour.</summary>
    private static double? Slope(List<SoakSample> samples, Func<SoakSample, long> bytes)
    {
        if (samples.Count < 2) return null;
        var hours = samples.Select(s => s.Seconds / 3600).ToArray();
        var mib = samples.Select(s => bytes(s) / (1024.0 * 1024)).ToArray();
        var (meanX, meanY) = (hours.Average(), mib.Average());
        var covariance = hours.Zip(mib, (x, y) => (x - meanX) * (y - meanY)).Sum();
        var variance = hours.Sum(x => (x - meanX) * (x - meanX));
        return variance > 0 ? covariance / variance : null;
    }
}
