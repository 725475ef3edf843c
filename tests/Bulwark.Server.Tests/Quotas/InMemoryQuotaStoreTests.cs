using Bulwark.Server.Quotas;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;

namespace Bulwark.Server.Tests.Quotas;

public class InMemoryQuotaStoreTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 15, 10, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(60)]
    [InlineData(1000)]
    public async Task ABurstAdmitsExactlyTheRequestsPerMinute(long rpm)
    {
        var clock = new ManualClock(Start);
        var store = new InMemoryQuotaStore(clock);
        var limits = new KeyLimits(rpm, 0, 0, 0);
        var admitted = 0;
        for (var i = 0; i < rpm + 5; i++)
            if ((await store.AdmitAsync("k", limits, 0, "l", default)).Admitted) admitted++;
        Assert.Equal(rpm, admitted);

        var refused = await store.AdmitAsync("k", limits, 0, "l", default);
        Assert.Equal(QuotaLimits.Requests, refused.Limit);
        Assert.Equal((long)(60_000_000.0 / rpm), refused.RetryAfterMicros, tolerance: 1);
        clock.Advance(TimeSpan.FromMicroseconds(60_000_000.0 / rpm));
        Assert.True((await store.AdmitAsync("k", limits, 0, "l", default)).Admitted);
    }

    [Theory]
    [InlineData(999, true)]
    [InlineData(1000, true)]
    [InlineData(1001, false)]
    public async Task ARequestIsAdmittedUpToTheTokensPerMinuteAndNotAbove(long tokens, bool admitted)
    {
        var store = new InMemoryQuotaStore(new ManualClock(Start));
        var verdict = await store.AdmitAsync("k", new KeyLimits(0, 1000, 0, 0), tokens, "l", default);
        Assert.Equal(admitted, verdict.Admitted);
        if (admitted) Assert.Equal(1000 - tokens, verdict.RemainingTokens);
    }

    [Fact]
    public async Task SettlementRefundsTheUnusedPartOfAReservation()
    {
        var store = new InMemoryQuotaStore(new ManualClock(Start));
        var limits = new KeyLimits(0, 1000, 0, 0);
        var first = await store.AdmitAsync("k", limits, 800, "a", default);
        Assert.True(first.Admitted);
        Assert.False((await store.AdmitAsync("k", limits, 300, "b", default)).Admitted);

        await store.SettleAsync("k", limits, "a", 800, 100, first, default);

        var after = await store.AdmitAsync("k", limits, 900, "c", default);
        Assert.True(after.Admitted);
        Assert.Equal(0, after.RemainingTokens);
    }

    [Fact]
    public async Task UsingMoreThanReservedIsChargedToo()
    {
        var store = new InMemoryQuotaStore(new ManualClock(Start));
        var limits = new KeyLimits(0, 1000, 0, 0);
        var first = await store.AdmitAsync("k", limits, 100, "a", default);
        await store.SettleAsync("k", limits, "a", 100, 600, first, default);
        Assert.False((await store.AdmitAsync("k", limits, 401, "b", default)).Admitted);
        Assert.True((await store.AdmitAsync("k", limits, 400, "b", default)).Admitted);
    }

    [Theory]
    [InlineData(3, 3, true)]
    [InlineData(3, 4, false)]
    public async Task ConcurrencyIsCappedAndFreedBySettlement(long max, int attempts, bool allAdmitted)
    {
        var store = new InMemoryQuotaStore(new ManualClock(Start));
        var limits = new KeyLimits(0, 0, 0, max);
        var verdicts = new List<QuotaVerdict>();
        for (var i = 0; i < attempts; i++) verdicts.Add(await store.AdmitAsync("k", limits, 0, $"l{i}", default));
        Assert.Equal(allAdmitted, verdicts.All(v => v.Admitted));
        if (!allAdmitted) Assert.Equal(QuotaLimits.Concurrency, verdicts[^1].Limit);

        await store.SettleAsync("k", limits, "l0", 0, 0, verdicts[0], default);
        Assert.True((await store.AdmitAsync("k", limits, 0, "again", default)).Admitted);
    }

    [Theory]
    [InlineData(4999, true)]
    [InlineData(5000, true)]
    [InlineData(5001, false)]
    public async Task TheDailyBudgetHoldsUntilMidnightUtc(long tokens, bool admitted)
    {
        var clock = new ManualClock(Start);
        var store = new InMemoryQuotaStore(clock);
        var limits = new KeyLimits(0, 0, 5000, 0);
        var verdict = await store.AdmitAsync("k", limits, tokens, "a", default);
        Assert.Equal(admitted, verdict.Admitted);
        if (admitted) return;
        Assert.Equal(QuotaLimits.TokensPerDay, verdict.Limit);
        Assert.Equal(TimeSpan.FromHours(14).TotalMicroseconds, verdict.RetryAfterMicros);
        clock.Advance(TimeSpan.FromHours(14));
        Assert.True((await store.AdmitAsync("k", limits, 5000, "b", default)).Admitted);
    }

    [Fact]
    public async Task ARefusalChargesNothing()
    {
        var store = new InMemoryQuotaStore(new ManualClock(Start));
        var limits = new KeyLimits(10, 100, 0, 0);
        Assert.False((await store.AdmitAsync("k", limits, 101, "a", default)).Admitted);
        var ok = await store.AdmitAsync("k", limits, 100, "b", default);
        Assert.True(ok.Admitted);
        Assert.Equal(9, ok.RemainingRequests);
    }
}
