using Bulwark.Server.Quotas;
using Bulwark.Server.Requests;
using Bulwark.Server.Tests.Security;
using Bulwark.Server.Tests.Storage;
using Bulwark.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Bulwark.Server.Tests.Quotas;

/// <summary>
/// Concurrency leases in Redis expire unless the replica holding them renews them: a request holds its
/// slot for as long as it runs, and a dead replica's slots come back within one lifetime.
/// </summary>
public sealed class LeaseRenewalTests
{
    private static readonly KeyLimits OneAtATime = KeyLimits.None with { MaxConcurrent = 1 };

    private static async Task<(RedisQuotaStore Store, IDatabase Redis, string Prefix)> StoreAsync(TimeSpan lifetime, TimeProvider? clock = null)
    {
        var prefix = $"bulwark-lease-{Guid.NewGuid():N}:";
        var connection = await ConnectionMultiplexer.ConnectAsync(TestDatabases.RedisConfiguration);
        return (new RedisQuotaStore(connection, prefix, clock, lifetime), connection.GetDatabase(), prefix);
    }

    [Fact]
    public async Task ALeaseExpiresOneLifetimeAfterItsLastRenewalAndNotBefore()
    {
        var clock = new ManualClock(new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero));
        var (store, _, _) = await StoreAsync(TimeSpan.FromSeconds(60), clock);
        Assert.True((await store.AdmitAsync("k", OneAtATime, 0, "held", default)).Admitted);

        clock.Advance(TimeSpan.FromSeconds(40));
        await store.RenewAsync([new OpenLease("k", "held")], default);
        // 80 s after it opened, 40 s after its renewal: still held.
        clock.Advance(TimeSpan.FromSeconds(40));
        Assert.Equal(QuotaLimits.Concurrency, (await store.AdmitAsync("k", OneAtATime, 0, "other", default)).Limit);
        // A microsecond short of 60 s after the renewal: still held; at 60 s it has expired.
        clock.Advance(TimeSpan.FromSeconds(20) - TimeSpan.FromMicroseconds(1));
        Assert.Equal(QuotaLimits.Concurrency, (await store.AdmitAsync("k", OneAtATime, 0, "other", default)).Limit);
        clock.Advance(TimeSpan.FromMicroseconds(1));
        Assert.True((await store.AdmitAsync("k", OneAtATime, 0, "other", default)).Admitted);
    }

    [Fact]
    public async Task RenewingASettledLeaseDoesNotOpenItAgain()
    {
        var clock = new ManualClock(new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero));
        var (store, redis, prefix) = await StoreAsync(TimeSpan.FromSeconds(60), clock);
        var verdict = await store.AdmitAsync("k", OneAtATime, 0, "done", default);
        await store.SettleAsync("k", OneAtATime, "done", 0, 0, verdict, default);
        // A renewal that raced the settlement (its snapshot taken before) lands after it.
        await store.RenewAsync([new OpenLease("k", "done"), new OpenLease("unknown-key", "never")], default);
        Assert.Equal(0, await redis.SortedSetLengthAsync($"{prefix}{{k}}:c"));
        Assert.Equal(0, await redis.SortedSetLengthAsync($"{prefix}{{unknown-key}}:c"));
        Assert.True((await store.AdmitAsync("k", OneAtATime, 0, "next", default)).Admitted);
    }

    [Fact]
    public async Task TheRenewerKeepsARunningRequestsSlotPastItsLifetimeAndADeadReplicasSlotExpires()
    {
        // Real time: a 6 s lifetime is renewed every 2 s, so the renewal survives a 4 s stall of a machine busy
        // with the rest of the suite (with 3 s it had 2 s, and a loaded 2-core CI run once missed it).
        var lifetime = TimeSpan.FromSeconds(6);
        var (store, redis, prefix) = await StoreAsync(lifetime);
        var open = new OpenLeases();
        using var renewer = new QuotaLeaseRenewer(store, open, TimeProvider.System, NullLogger<QuotaLeaseRenewer>.Instance);
        await renewer.StartAsync(default);
        try
        {
            var limits = KeyLimits.None with { MaxConcurrent = 2 };
            Assert.True((await store.AdmitAsync("k", limits, 0, "running", default)).Admitted);
            open.Add("k", "running");
            open.Add("k", "placeholder"); // never opened in Redis: renewing it must not add it
            // Another replica's lease, which nobody renews: that replica died.
            var opened = await RedisMicrosAsync(redis);
            Assert.True((await store.AdmitAsync("k", limits, 0, "dead", default)).Admitted);

            // The dead lease is pruned once its lifetime passes, by the next admission.
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(20), async () =>
                (await store.AdmitAsync("k", limits, 0, "after-" + Guid.NewGuid().ToString("N"), default)).Admitted),
                "the dead replica's lease did not expire");
            var waited = await RedisMicrosAsync(redis) - opened;
            Assert.True(waited >= lifetime.TotalMicroseconds, $"the dead lease expired after {waited} µs, before its lifetime");

            // The running request's lease, renewed, still holds its slot well past one lifetime.
            var running = await redis.SortedSetScoreAsync($"{prefix}{{k}}:c", "running");
            Assert.NotNull(running);
            Assert.True(running > opened + lifetime.TotalMicroseconds, "the running lease was not renewed");
            Assert.Null(await redis.SortedSetScoreAsync($"{prefix}{{k}}:c", "placeholder"));
        }
        finally
        {
            await renewer.StopAsync(default);
        }
    }

    [Theory]
    [InlineData("00:00:02.999", false)]
    [InlineData("00:00:03", true)]
    [InlineData("01:00:00", true)]
    [InlineData("01:00:00.001", false)]
    public void TheLeaseLifetimeIsBetweenThreeSecondsAndAnHour(string lifetime, bool valid)
    {
        var problems = new QuotaOptions { LeaseLifetime = TimeSpan.Parse(lifetime, System.Globalization.CultureInfo.InvariantCulture) }.Validate();
        Assert.Equal(valid, problems.Count == 0);
        if (!valid) Assert.Contains("Bulwark:Quotas:LeaseLifetime", problems[0], StringComparison.Ordinal);
    }

    private static async Task<long> RedisMicrosAsync(IDatabase redis)
    {
        var now = await redis.Multiplexer.GetServers()[0].TimeAsync();
        return (new DateTimeOffset(now, TimeSpan.Zero) - DateTimeOffset.UnixEpoch).Ticks / 10;
    }
}
