using Bulwark.Server.Hosting;
using Bulwark.Server.Tests.Security;
using Microsoft.Extensions.Logging.Abstractions;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>When the server asks for a full GC: growth of committed or old-generation bytes since the last gen2, at, below and above the margin.</summary>
public sealed class Gen2PolicyTests
{
    private const long MiB = 1 << 20;

    private static Gen2Policy Started(long margin, GcReading first)
    {
        var policy = new Gen2Policy(margin);
        Assert.False(policy.ShouldCollect(first)); // the first reading is the baseline
        return policy;
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(6 * MiB - 1, false)]
    [InlineData(6 * MiB, true)]
    [InlineData(6 * MiB + 1, true)]
    public void CommittedGrowthAtTheMarginCollects(long growth, bool collects)
    {
        var policy = Started(6 * MiB, new GcReading(3, 80 * MiB, 40 * MiB));
        Assert.Equal(collects, policy.ShouldCollect(new GcReading(3, 80 * MiB + growth, 40 * MiB)));
    }

    [Theory]
    [InlineData(6 * MiB - 1, false)]
    [InlineData(6 * MiB, true)]
    public void OldGenerationGrowthAtTheMarginCollects(long growth, bool collects)
    {
        var policy = Started(6 * MiB, new GcReading(3, 80 * MiB, 40 * MiB));
        Assert.Equal(collects, policy.ShouldCollect(new GcReading(3, 80 * MiB, 40 * MiB + growth)));
    }

    [Fact]
    public void AGen2SinceMovesTheBaselineSoLiveGrowthIsNotCollectedAgain()
    {
        var policy = Started(6 * MiB, new GcReading(3, 80 * MiB, 40 * MiB));
        Assert.True(policy.ShouldCollect(new GcReading(3, 90 * MiB, 48 * MiB)));
        // The collection ran and kept most of it (live data): the reading after it is the new baseline.
        Assert.False(policy.ShouldCollect(new GcReading(4, 88 * MiB, 47 * MiB)));
        Assert.Equal(new GcReading(4, 88 * MiB, 47 * MiB), policy.Baseline);
        Assert.False(policy.ShouldCollect(new GcReading(4, 93 * MiB, 47 * MiB)));
        Assert.True(policy.ShouldCollect(new GcReading(4, 94 * MiB, 47 * MiB)));
    }

    [Fact]
    public void ShrinkingNeverCollects()
    {
        var policy = Started(6 * MiB, new GcReading(3, 80 * MiB, 40 * MiB));
        Assert.False(policy.ShouldCollect(new GcReading(3, 60 * MiB, 30 * MiB)));
    }

    [Fact]
    public void MarginZeroIsOff()
    {
        var policy = new Gen2Policy(0);
        Assert.False(policy.ShouldCollect(new GcReading(1, 0, 0)));
        Assert.False(policy.ShouldCollect(new GcReading(1, long.MaxValue / 2, long.MaxValue / 2)));
    }

    [Fact]
    public async Task TheCollectorAsksForAFullGcWhenThisProcessGrowsByTheMargin()
    {
        var options = new MemoryOptions { Gen2WhenGrownBy = "1MiB", Gen2CheckInterval = TimeSpan.FromSeconds(1) };
        using var collector = new Gen2Collector(options, TimeProvider.System, NullLogger<Gen2Collector>.Instance);
        var requested = Gen2Collector.Requested;
        await collector.StartAsync(CancellationToken.None);
        var kept = new List<byte[]>();
        try
        {
            // Small objects kept alive and promoted by gen1 collections: gen2 grows without a gen2, as under the soak.
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(60), () =>
            {
                for (var i = 0; i < 4; i++) kept.Add(new byte[64 * 1024]);
                GC.Collect(1, GCCollectionMode.Forced, blocking: true);
                return Task.FromResult(collector.Collections > 0);
            }), $"no collection asked for after {kept.Count} arrays of 64 KiB");
            Assert.True(Gen2Collector.Requested >= requested + collector.Collections);
        }
        finally
        {
            await collector.StopAsync(CancellationToken.None);
        }
        GC.KeepAlive(kept);
    }
}
