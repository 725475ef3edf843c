namespace Bulwark.Server.Tests.Security;

/// <summary>What a burst against a requests-per-minute limit may admit, given how long it really took.</summary>
internal static class GcraBurst
{
    /// <summary>
    /// GCRA refills one request every 60/limit seconds: a burst that ends within that admits exactly
    /// <paramref name="limit"/>; one that a loaded machine stretched over k refill periods may admit k more,
    /// never more than that and never fewer than the limit.
    /// </summary>
    public static (int Least, int Most) Admissible(int limit, TimeSpan elapsed) =>
        (limit, limit + (int)Math.Floor(elapsed.TotalSeconds / (60.0 / limit)));
}
