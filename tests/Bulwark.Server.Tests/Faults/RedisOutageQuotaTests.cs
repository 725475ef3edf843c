using Bulwark.Server.Observability;
using Bulwark.Server.Quotas;
using Bulwark.Server.Requests;
using Bulwark.Server.Tests.Quotas;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Bulwark.Server.Tests.Faults;

/// <summary>
/// Two replicas' quota stores (each its own Redis connection, as two processes have) on a private
/// Redis that the test kills and starts again, with time held by a clock the test moves: Redis's
/// scripts and the local shares read the same clock, so every count is exact. The oracle is one
/// GCRA bucket: over any stretch of time t a key with L requests/min may be admitted at most
/// L + L × t / 1 min times, outage or not.
/// </summary>
public sealed class RedisOutageQuotaTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2030, 1, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly ManualClock _clock = new(Start);
    private readonly List<IAsyncDisposable> _owned = [];
    private PrivateRedis _redis = null!;

    public async Task InitializeAsync() => _redis = await PrivateRedis.StartNewAsync();

    public async Task DisposeAsync()
    {
        foreach (var owned in _owned) await owned.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [Fact]
    public async Task ABurstAcrossAnOutageAdmitsNoMoreThanOneSharedBucketWould()
    {
        var (a, b) = Replicas(RedisDownPolicy.Local);
        var limits = KeyLimits.None with { RequestsPerMinute = 20 };

        var before = await BurstAsync(a, b, limits, 10);
        Assert.Equal(10, before);

        _redis.Kill();
        // Each replica's share is 10/min, and a key's minute is taken as spent when a replica first serves it
        // without Redis (it cannot know what the other replica admitted): nothing at once ...
        Assert.Equal(0, await BurstAsync(a, b, limits, 40));
        // ... then 5 each in 30 s, not the 10 each a fresh bucket would give.
        _clock.Advance(TimeSpan.FromSeconds(30));
        var during = await BurstAsync(a, b, limits, 40);
        Assert.Equal(10, during);
        Assert.False(a.IsShared);
        Assert.False(b.IsShared);

        await _redis.StartAsync();
        await WaitSharedAsync(a, b);
        // The 10 admitted locally were charged to Redis: 20 of the 30 one bucket allows in these 30 s are used.
        var back = await BurstAsync(a, b, limits, 40);
        Assert.Equal(10, back);
        Assert.True(before + during + back <= 20 + 10, $"admitted {before + during + back} in 30 s; one bucket allows 30");

        _clock.Advance(TimeSpan.FromSeconds(30));
        var after = await BurstAsync(a, b, limits, 40);
        Assert.Equal(10, after);
        Assert.True(before + during + back + after <= 20 + 20, $"admitted {before + during + back + after} in one minute; one bucket allows 40");
    }

    [Fact]
    public async Task ConcurrencySlotsOpenedBeforeAndDuringTheOutageAreAllCounted()
    {
        var (a, b) = Replicas(RedisDownPolicy.Local);
        var limits = KeyLimits.None with { MaxConcurrent = 4 };
        var held = new List<(ResilientQuotaStore Store, string Lease, QuotaVerdict Verdict)>();
        async Task<bool> OpenAsync(ResilientQuotaStore store)
        {
            var lease = Guid.NewGuid().ToString("N");
            var verdict = await store.AdmitAsync("k", limits, 0, lease, default);
            if (verdict.Admitted) held.Add((store, lease, verdict));
            return verdict.Admitted;
        }

        Assert.True(await OpenAsync(a));
        Assert.True(await OpenAsync(a));
        _redis.Kill();
        // A's share is 2 and it holds 2 from Redis already; B's share is 2.
        Assert.False(await OpenAsync(a));
        Assert.True(await OpenAsync(b));
        Assert.True(await OpenAsync(b));
        Assert.False(await OpenAsync(b));
        // One of A's Redis slots ends during the outage: its settlement waits for Redis.
        var (store, lease, verdict) = held[0];
        await store.SettleAsync("k", limits, lease, 0, 0, verdict, default);
        held.RemoveAt(0);

        await _redis.StartAsync();
        await WaitSharedAsync(a, b);
        // Redis now holds A's remaining slot and B's two local ones: one of four is free.
        Assert.True(await OpenAsync(a));
        Assert.False(await OpenAsync(b));
        foreach (var (s, l, v) in held) await s.SettleAsync("k", limits, l, 0, 0, v, default);
        held.Clear();
        for (var i = 0; i < 4; i++) Assert.True(await OpenAsync(i % 2 == 0 ? a : b));
        Assert.False(await OpenAsync(a));
    }

    [Fact]
    public async Task WhatCannotBeSharedIsRefusedAndTheRefusePolicyRefusesEveryLimitedKey()
    {
        var (a, _) = Replicas(RedisDownPolicy.Local);
        var (refusing, _) = Replicas(RedisDownPolicy.Refuse);
        _redis.Kill();
        // Daily and hourly budgets lived in Redis; a limit of one cannot be split between two replicas.
        await Assert.ThrowsAsync<QuotaStoreUnavailableException>(async () =>
            await a.AdmitAsync("k", KeyLimits.None with { TokensPerDay = 1000 }, 10, "l1", default));
        await Assert.ThrowsAsync<QuotaStoreUnavailableException>(async () =>
            await a.AdmitAsync("k", KeyLimits.None with { TokensPerHour = 1000 }, 10, "l1h", default));
        await Assert.ThrowsAsync<QuotaStoreUnavailableException>(async () =>
            await a.AdmitAsync("k", KeyLimits.None with { RequestsPerHour = 1000 }, 0, "l1r", default));
        await Assert.ThrowsAsync<QuotaStoreUnavailableException>(async () =>
            await a.AdmitAsync("k", KeyLimits.None with { MaxConcurrent = 1 }, 0, "l2", default));
        await Assert.ThrowsAsync<QuotaStoreUnavailableException>(async () =>
            await refusing.AdmitAsync("k", KeyLimits.None with { RequestsPerMinute = 1000 }, 0, "l3", default));
        // Without a replica count, nothing is shared out.
        var unknown = Store(RedisDownPolicy.Local, () => null);
        await Assert.ThrowsAsync<QuotaStoreUnavailableException>(async () =>
            await unknown.AdmitAsync("k", KeyLimits.None with { RequestsPerMinute = 1000 }, 0, "l4", default));
    }

    private async Task<int> BurstAsync(ResilientQuotaStore a, ResilientQuotaStore b, KeyLimits limits, int requests)
    {
        var admitted = 0;
        for (var i = 0; i < requests; i++)
        {
            var store = i % 2 == 0 ? a : b;
            var lease = Guid.NewGuid().ToString("N");
            var verdict = await store.AdmitAsync("k", limits, 0, lease, default);
            if (!verdict.Admitted) continue;
            admitted++;
            await store.SettleAsync("k", limits, lease, 0, 0, verdict, default);
        }
        return admitted;
    }

    private static async Task WaitSharedAsync(params ResilientQuotaStore[] stores)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!stores.All(s => s.IsShared))
        {
            Assert.True(DateTime.UtcNow < deadline, "a replica did not return to Redis within 30 s of its restart");
            await Task.Delay(20);
        }
    }

    private (ResilientQuotaStore A, ResilientQuotaStore B) Replicas(RedisDownPolicy policy)
    {
        var prefix = $"t{Guid.NewGuid():N}:";
        return (Store(policy, () => 2, prefix), Store(policy, () => 2, prefix));
    }

    private ResilientQuotaStore Store(RedisDownPolicy policy, Func<int?> replicas, string prefix = "t:")
    {
        var connection = RedisQuotaStore.Connect(_redis.Configuration);
        var metrics = new ServerMetrics(() => default, () => (0, 0));
        var store = new ResilientQuotaStore(new RedisQuotaStore(connection, prefix, _clock), policy, replicas, _clock,
            NullLogger<ResilientQuotaStore>.Instance, metrics);
        _owned.Add(store);
        _owned.Add(connection);
        _owned.Add(new Disposing(metrics));
        return store;
    }

    private sealed class Disposing(IDisposable inner) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            inner.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
