using Bulwark.Server.Quotas;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Storage;
using StackExchange.Redis;

namespace Bulwark.Server.Tests.Quotas;

/// <summary>
/// The Redis script against a real Redis, through two separate connections (two replicas).
/// Redis's clock cannot be moved, so these check what holds within one window; the hourly ones
/// drive both connections' scripts from one test clock, so the hour cannot turn under them.
/// </summary>
public class RedisQuotaStoreTests
{
    [Theory]
    [InlineData(1, 3)]
    [InlineData(10, 10)]
    [InlineData(30, 25)]
    public async Task ConcurrentAdmissionsFromTwoConnectionsAdmitExactlyTheRequestsPerMinute(long rpm, int extra)
    {
        var (a, b) = await PairAsync();
        var limits = new KeyLimits(rpm, 0, 0, 0);
        var verdicts = await Task.WhenAll(Enumerable.Range(0, (int)rpm + extra).Select(i =>
            Task.Run(async () => await (i % 2 == 0 ? a : b).AdmitAsync("k", limits, 0, "l" + i, default))));
        Assert.Equal(rpm, verdicts.Count(v => v.Admitted));
        Assert.All(verdicts.Where(v => !v.Admitted), v =>
        {
            Assert.Equal(QuotaLimits.Requests, v.Limit);
            Assert.InRange(v.RetryAfterMicros, 1, 60_000_000 / rpm + 1);
        });
    }

    [Theory]
    [InlineData(999, true)]
    [InlineData(1000, true)]
    [InlineData(1001, false)]
    public async Task ARequestIsAdmittedUpToTheTokensPerMinuteAndNotAbove(long tokens, bool admitted)
    {
        var (a, _) = await PairAsync();
        var verdict = await a.AdmitAsync("k", new KeyLimits(0, 1000, 0, 0), tokens, "l", default);
        Assert.Equal(admitted, verdict.Admitted);
        if (admitted) Assert.InRange(verdict.RemainingTokens, 1000 - tokens, 1000 - tokens + 1); // time drains between calls
    }

    [Fact]
    public async Task SettlementOnOneReplicaRefundsTheUnusedPartForTheOther()
    {
        var (a, b) = await PairAsync();
        // Real time refills 1/60 of the limit per second; every margin here holds for 20 s or more.
        var limits = new KeyLimits(0, 1000, 0, 0);
        var first = await a.AdmitAsync("k", limits, 900, "a", default);
        Assert.True(first.Admitted);
        Assert.False((await b.AdmitAsync("k", limits, 500, "b", default)).Admitted);
        await a.SettleAsync("k", limits, "a", 900, 100, first, default);
        Assert.True((await b.AdmitAsync("k", limits, 850, "c", default)).Admitted);
        Assert.False((await a.AdmitAsync("k", limits, 400, "d", default)).Admitted);
    }

    [Fact]
    public async Task ConcurrencyLeasesAreSharedAndFreedBySettlement()
    {
        var (a, b) = await PairAsync();
        var limits = new KeyLimits(0, 0, 0, 2);
        var first = await a.AdmitAsync("k", limits, 0, "one", default);
        Assert.True(first.Admitted);
        Assert.True((await b.AdmitAsync("k", limits, 0, "two", default)).Admitted);
        var third = await a.AdmitAsync("k", limits, 0, "three", default);
        Assert.Equal(QuotaLimits.Concurrency, third.Limit);
        await a.SettleAsync("k", limits, "one", 0, 0, first, default);
        Assert.True((await b.AdmitAsync("k", limits, 0, "four", default)).Admitted);
    }

    [Theory]
    [InlineData(100, true)]
    [InlineData(101, false)]
    public async Task TheDailyBudgetIsSharedAndExact(long second, bool admitted)
    {
        var (a, b) = await PairAsync();
        var limits = new KeyLimits(0, 0, 500, 0);
        Assert.True((await a.AdmitAsync("k", limits, 400, "one", default)).Admitted);
        var verdict = await b.AdmitAsync("k", limits, second, "two", default);
        Assert.Equal(admitted, verdict.Admitted);
        if (!admitted) Assert.Equal(QuotaLimits.TokensPerDay, verdict.Limit);
    }

    [Theory]
    [InlineData(1, 3)]
    [InlineData(10, 10)]
    [InlineData(30, 25)]
    public async Task ConcurrentAdmissionsFromTwoConnectionsAdmitExactlyTheRequestsPerHour(long rph, int extra)
    {
        // One test clock for both, a second before the hour turns: the hour must not turn during the test.
        var clock = new ManualClock(new DateTimeOffset(2026, 1, 15, 10, 59, 59, TimeSpan.Zero));
        var (a, b) = await PairAsync(clock);
        var limits = new KeyLimits(0, 0, 0, 0, RequestsPerHour: rph);
        var verdicts = await Task.WhenAll(Enumerable.Range(0, (int)rph + extra).Select(i =>
            Task.Run(async () => await (i % 2 == 0 ? a : b).AdmitAsync("k", limits, 0, "l" + i, default))));
        Assert.Equal(rph, verdicts.Count(v => v.Admitted));
        Assert.Equal(Enumerable.Range(0, (int)rph).Select(i => (long)i).Order(), verdicts.Where(v => v.Admitted).Select(v => v.RemainingRequestsPerHour).Order());
        Assert.All(verdicts.Where(v => !v.Admitted), v =>
        {
            Assert.Equal(QuotaLimits.RequestsPerHour, v.Limit);
            Assert.Equal(1_000_000, v.RetryAfterMicros);
        });
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.True((await b.AdmitAsync("k", limits, 0, "next", default)).Admitted);
    }

    [Fact]
    public async Task TokensPerHourAreSharedExactlyAndRefundedAcrossConnections()
    {
        var (a, b) = await PairAsync(new ManualClock(new DateTimeOffset(2026, 1, 15, 10, 30, 0, TimeSpan.Zero)));
        var limits = new KeyLimits(0, 0, 0, 0, TokensPerHour: 1000);
        var verdicts = await Task.WhenAll(Enumerable.Range(0, 10).Select(i =>
            Task.Run(async () => (Lease: "l" + i, Verdict: await (i % 2 == 0 ? a : b).AdmitAsync("k", limits, 300, "l" + i, default)))));
        var admitted = verdicts.Where(v => v.Verdict.Admitted).ToList();
        Assert.Equal(3, admitted.Count);
        Assert.All(verdicts.Where(v => !v.Verdict.Admitted), v => Assert.Equal(QuotaLimits.TokensPerHour, v.Verdict.Limit));

        // One replica settles a reservation that used nothing; the other may use what it freed, and no more.
        await a.SettleAsync("k", limits, admitted[0].Lease, 300, 0, admitted[0].Verdict, default);
        Assert.False((await b.AdmitAsync("k", limits, 401, "big", default)).Admitted);
        var last = await b.AdmitAsync("k", limits, 400, "fits", default);
        Assert.True(last.Admitted);
        Assert.Equal(0, last.RemainingTokensPerHour);
    }

    private static async Task<(RedisQuotaStore A, RedisQuotaStore B)> PairAsync(TimeProvider? clock = null)
    {
        var prefix = $"bulwark-test-{Guid.NewGuid():N}:";
        var a = await ConnectionMultiplexer.ConnectAsync(TestDatabases.RedisConfiguration);
        var b = await ConnectionMultiplexer.ConnectAsync(TestDatabases.RedisConfiguration);
        return (new RedisQuotaStore(a, prefix, clock), new RedisQuotaStore(b, prefix, clock));
    }
}
