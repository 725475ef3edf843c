namespace Bulwark.Bench.Soak;

/// <summary>One sampling tick of a soak: seconds since the load started, the server's reading then, and what the clients saw since the last tick.</summary>
internal sealed record SoakSample(double Seconds, ServerReading Server, ClientInterval Clients);

/// <summary>
/// What a soak's samples say once warm-up is over (samples taken at or after
/// <see cref="WarmupSeconds"/>): the RSS drift <c>(max − min) / min</c> and whether it is within
/// <see cref="FlatLimit"/>; the least-squares slope of RSS and of the GC heap, in MiB per hour, to
/// tell a trend from noise; and the p99 drift, <c>(last − first) / first</c> over the first and last
/// post-warm-up intervals that completed a request. Null where fewer than two samples (or latency
/// windows) are left to compare. The idle reading before the load (at 0 s) is never judged.
/// </summary>
internal sealed record SoakVerdict(
    double WarmupSeconds, int Samples, long RssMinBytes, long RssMaxBytes, double? RssDrift, double? RssSlopeMiBPerHour, double? HeapSlopeMiBPerHour,
    double? P99FirstSeconds, double? P99LastSeconds, double? P99Drift)
{
    /// <summary>The goal of issue 21: RSS flat within 5 % after warm-up.</summary>
    public const double FlatLimit = 0.05;

    public bool RssFlat => RssDrift is { } drift && drift <= FlatLimit;

    public static SoakVerdict Of(IReadOnlyList<SoakSample> samples, double warmupSeconds)
    {
        var after = samples.Where(s => s.Seconds > 0 && s.Seconds >= warmupSeconds).ToList();
        var rss = after.Select(s => s.Server.RssBytes).ToList();
        var (min, max) = rss.Count == 0 ? (0L, 0L) : (rss.Min(), rss.Max());
        var windows = after.Where(s => s.Clients.Latency.Count > 0).ToList();
        double? first = windows.Count >= 2 ? windows[0].Clients.Latency.P99 : null;
        double? last = windows.Count >= 2 ? windows[^1].Clients.Latency.P99 : null;
        return new SoakVerdict(warmupSeconds, after.Count, min, max,
            after.Count >= 2 && min > 0 ? (double)(max - min) / min : null,
            Slope(after, s => s.Server.RssBytes), Slope(after, s => s.Server.HeapBytes),
            first, last, first is > 0 ? (last - first) / first : null);
    }

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
