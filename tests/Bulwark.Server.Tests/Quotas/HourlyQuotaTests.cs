using Bulwark.Server.Quotas;
using Bulwark.Server.Requests;
using static Bulwark.Server.Tests.Quotas.QuotaStorePropertyTests;

namespace Bulwark.Server.Tests.Quotas;

/// <summary>
/// Requests/hour and tokens/hour at, below and above each limit, held alike against the in-memory
/// store and the Redis script (its clock driven by the test, so both see the same instants).
/// </summary>
public class HourlyQuotaTests
{
    // 40 minutes before the hour turns.
    private static readonly DateTimeOffset Start = new(2026, 1, 15, 10, 20, 0, TimeSpan.Zero);
    private static readonly long UntilHour = (long)TimeSpan.FromMinutes(40).TotalMicroseconds;

    private static Task<QuotaVerdict> AdmitAsync(IQuotaStore store, KeyLimits limits, long tokens, string lease = "l") =>
        store.AdmitAsync("k", limits, tokens, lease, default).AsTask();

    [Theory]
    [InlineData(Memory, 1)]
    [InlineData(Memory, 7)]
    [InlineData(Redis, 1)]
    [InlineData(Redis, 7)]
    public async Task TheRequestsPerHourAreAdmittedExactlyUntilTheHourTurns(string kind, long rph)
    {
        var clock = new ManualClock(Start);
        var store = NewStore(kind, clock);
        var limits = new KeyLimits(0, 0, 0, 0, RequestsPerHour: rph);
        for (var i = 1; i <= rph; i++)
        {
            var admitted = await AdmitAsync(store, limits, 0);
            Assert.True(admitted.Admitted);
            Assert.Equal(rph - i, admitted.RemainingRequestsPerHour);
            Assert.Equal(UntilHour, admitted.ResetHourMicros);
        }

        var refused = await AdmitAsync(store, limits, 0);
        Assert.Equal(QuotaLimits.RequestsPerHour, refused.Limit);
        Assert.Equal(UntilHour, refused.RetryAfterMicros);
        Assert.Equal(0, refused.RemainingRequestsPerHour);

        clock.Advance(TimeSpan.FromMicroseconds(UntilHour - 1));
        Assert.Equal(QuotaLimits.RequestsPerHour, (await AdmitAsync(store, limits, 0)).Limit);
        clock.Advance(TimeSpan.FromMicroseconds(1));
        var nextHour = await AdmitAsync(store, limits, 0);
        Assert.True(nextHour.Admitted);
        Assert.Equal(rph - 1, nextHour.RemainingRequestsPerHour);
        Assert.Equal((long)TimeSpan.FromHours(1).TotalMicroseconds, nextHour.ResetHourMicros);
    }

    [Theory]
    [InlineData(Memory, 1999, true)]
    [InlineData(Memory, 2000, true)]
    [InlineData(Memory, 2001, false)]
    [InlineData(Redis, 1999, true)]
    [InlineData(Redis, 2000, true)]
    [InlineData(Redis, 2001, false)]
    public async Task TokensAreAdmittedUpToTheTokensPerHourAndNotAbove(string kind, long second, bool admitted)
    {
        var store = NewStore(kind, new ManualClock(Start));
        var limits = new KeyLimits(0, 0, 0, 0, TokensPerHour: 3000);
        Assert.Equal(2000, (await AdmitAsync(store, limits, 1000, "a")).RemainingTokensPerHour);

        var verdict = await AdmitAsync(store, limits, second, "b");
        Assert.Equal(admitted, verdict.Admitted);
        Assert.Equal(admitted ? 2000 - second : 2000, verdict.RemainingTokensPerHour);
        if (admitted) return;
        Assert.Equal(QuotaLimits.TokensPerHour, verdict.Limit);
        Assert.Equal(UntilHour, verdict.RetryAfterMicros);
    }

    [Theory]
    [InlineData(Memory)]
    [InlineData(Redis)]
    public async Task SettlementRefundsTheUnusedPartOfTheHourlyReservation(string kind)
    {
        var store = NewStore(kind, new ManualClock(Start));
        var limits = new KeyLimits(0, 0, 0, 0, TokensPerHour: 1000);
        var first = await AdmitAsync(store, limits, 800, "a");
        Assert.False((await AdmitAsync(store, limits, 300, "b")).Admitted);

        await store.SettleAsync("k", limits, "a", 800, 100, first, default);

        var after = await AdmitAsync(store, limits, 900, "c");
        Assert.True(after.Admitted);
        Assert.Equal(0, after.RemainingTokensPerHour);
        Assert.False((await AdmitAsync(store, limits, 1, "d")).Admitted);
    }

    [Theory]
    [InlineData(Memory)]
    [InlineData(Redis)]
    public async Task UsingMoreThanReservedIsChargedToTheHourToo(string kind)
    {
        var store = NewStore(kind, new ManualClock(Start));
        var limits = new KeyLimits(0, 0, 0, 0, TokensPerHour: 1000);
        var first = await AdmitAsync(store, limits, 100, "a");
        await store.SettleAsync("k", limits, "a", 100, 600, first, default);
        Assert.False((await AdmitAsync(store, limits, 401, "b")).Admitted);
        Assert.True((await AdmitAsync(store, limits, 400, "c")).Admitted);
    }

    [Theory]
    [InlineData(Memory)]
    [InlineData(Redis)]
    public async Task ARefundSettledAfterTheHourTurnedLeavesTheNewHourAlone(string kind)
    {
        var clock = new ManualClock(Start);
        var store = NewStore(kind, clock);
        var limits = new KeyLimits(0, 0, 0, 0, TokensPerHour: 1000);
        var first = await AdmitAsync(store, limits, 1000, "a");
        clock.Advance(TimeSpan.FromMicroseconds(UntilHour));
        var fresh = await AdmitAsync(store, limits, 1000, "b");
        Assert.True(fresh.Admitted);

        await store.SettleAsync("k", limits, "a", 1000, 0, first, default);

        var refused = await AdmitAsync(store, limits, 1, "c");
        Assert.Equal(QuotaLimits.TokensPerHour, refused.Limit);
        Assert.Equal(0, refused.RemainingTokensPerHour);
    }

    /// <summary>Retry-After must be when every refusing limit lets the request through, not the first one checked.</summary>
    [Theory]
    [InlineData(Memory)]
    [InlineData(Redis)]
    public async Task WhenSeveralLimitsRefuseTheOneThatHoldsLongestIsNamed(string kind)
    {
        var clock = new ManualClock(Start);
        var store = NewStore(kind, clock);
        // Requests: the minute's bucket refills in 60 s, the hour's in 40 min.
        var requests = new KeyLimits(1, 0, 0, 0, RequestsPerHour: 1);
        Assert.True((await AdmitAsync(store, requests, 0)).Admitted);
        var refused = await AdmitAsync(store, requests, 0);
        Assert.Equal(QuotaLimits.RequestsPerHour, refused.Limit);
        Assert.Equal(UntilHour, refused.RetryAfterMicros);

        // Tokens: the minute's bucket needs 60 ms for one token, the hour 40 min, the day 13 h 40 min.
        var tokens = new KeyLimits(0, 1000, 0, 0, TokensPerHour: 1000);
        Assert.True((await AdmitAsync(store, tokens, 1000, "t")).Admitted);
        Assert.Equal(QuotaLimits.TokensPerHour, (await AdmitAsync(store, tokens, 1, "u")).Limit);
        var withDay = tokens with { TokensPerDay = 1000 };
        var daily = await AdmitAsync(store, withDay, 1, "v");
        Assert.Equal(QuotaLimits.TokensPerDay, daily.Limit);
        Assert.Equal((long)TimeSpan.FromHours(13).Add(TimeSpan.FromMinutes(40)).TotalMicroseconds, daily.RetryAfterMicros);

        // Thirty seconds before the hour turns the minute's bucket is the one that holds longer.
        clock.Advance(TimeSpan.FromMicroseconds(UntilHour) - TimeSpan.FromSeconds(30));
        var again = new KeyLimits(1, 0, 0, 0, RequestsPerHour: 1);
        var other = NewStore(kind, clock);
        Assert.True((await AdmitAsync(other, again, 0)).Admitted);
        var minute = await AdmitAsync(other, again, 0);
        Assert.Equal(QuotaLimits.Requests, minute.Limit);
        Assert.Equal(60_000_000, minute.RetryAfterMicros);
    }
}
