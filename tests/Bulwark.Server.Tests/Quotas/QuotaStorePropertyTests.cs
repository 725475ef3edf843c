using Bulwark.Server.Quotas;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Storage;
using CsCheck;
using StackExchange.Redis;

namespace Bulwark.Server.Tests.Quotas;

/// <summary>
/// Properties both quota stores must keep, checked on random operation sequences: the in-memory
/// store, and the Lua script in a real Redis (its clock driven by the test through the store's
/// test-only "now" argument, so the same sequences run against both).
/// </summary>
public class QuotaStorePropertyTests
{
    public const string Memory = "memory";
    public const string Redis = "redis";

    private static readonly DateTimeOffset Start = new(2026, 1, 15, 10, 0, 0, TimeSpan.Zero);
    private static readonly Lazy<ConnectionMultiplexer> Connection = new(() => ConnectionMultiplexer.Connect(TestDatabases.RedisConfiguration));

    internal static IQuotaStore NewStore(string kind, TimeProvider clock) => kind switch
    {
        Memory => new InMemoryQuotaStore(clock),
        Redis => new RedisQuotaStore(Connection.Value, $"bulwark-test-{Guid.NewGuid():N}:", clock),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "expected memory or redis"),
    };

    /// <summary>
    /// Random reservations, settlements (of any open lease, in any order) and clock moves: at every
    /// step, the tokens charged (reserved, corrected by settlement) inside any window ending now never
    /// exceed what a bucket of one minute's tokens refilled at tokens/min allows: tpm + tpm × window / 60 s.
    /// </summary>
    [Theory]
    [InlineData(Memory)]
    [InlineData(Redis)]
    public void ReservationsNeverLetAKeyExceedItsTokensPerMinute(string kind)
    {
        var op = Gen.Select(Gen.Int[0, 2], Gen.Long[1, 400], Gen.Int[0, 20_000], Gen.Long[0, 400]);
        Gen.Select(Gen.Long[100, 1000], op.Array[1, 60], Gen.Bool).Sample((tpm, ops, fifo) =>
        {
            var clock = new ManualClock(Start);
            var store = NewStore(kind, clock);
            var limits = new KeyLimits(0, tpm, 0, 0);
            var charges = new List<(DateTimeOffset At, long Tokens)>();
            var open = new List<(string Lease, long Reserved, QuotaVerdict Verdict, int Index)>();
            var n = 0;
            foreach (var (step, tokens, advanceMs, actual) in ops)
            {
                if (step == 0)
                {
                    var verdict = store.AdmitAsync("k", limits, tokens, $"l{n}", default).AsTask().GetAwaiter().GetResult();
                    if (verdict.Admitted)
                    {
                        charges.Add((clock.GetUtcNow(), tokens));
                        open.Add(($"l{n}", tokens, verdict, charges.Count - 1));
                    }
                    n++;
                }
                else if (step == 1 && open.Count > 0)
                {
                    // Either the oldest lease, or one picked by the generated number.
                    var pick = fifo ? 0 : (int)(actual % open.Count);
                    var (lease, reserved, admitted, index) = open[pick];
                    open.RemoveAt(pick);
                    var used = Math.Min(actual, reserved);
                    store.SettleAsync("k", limits, lease, reserved, used, admitted, default).AsTask().GetAwaiter().GetResult();
                    // A refund returns capacity as if the reservation had been smaller from the start.
                    charges[index] = (charges[index].At, used);
                }
                else clock.Advance(TimeSpan.FromMilliseconds(advanceMs));

                var now = clock.GetUtcNow();
                foreach (var (from, _) in charges)
                {
                    var window = (now - from).TotalSeconds;
                    var charged = charges.Where(c => c.At >= from).Sum(c => c.Tokens);
                    Assert.True(charged <= tpm + tpm * window / 60 + 1e-6, $"{kind}: {charged} tokens in {window}s with tpm {tpm}");
                }
            }
        }, iter: 300);
    }
    private const long HourMicros = 3_600_000_000, DayMicros = 86_400_000_000;

    /// <summary>
    /// Random admissions against requests/hour, tokens/hour and tokens/day, settlements (of any open
    /// lease, using less or more than reserved) and clock moves across hours and a midnight, checked
    /// against a model of fixed UTC windows: every verdict admits exactly when the model does, names
    /// the refusing limit that holds longest with Retry-After at the end of its window, and reports
    /// what is left of the hour.
    /// </summary>
    [Theory]
    [InlineData(Memory)]
    [InlineData(Redis)]
    public void HourlyAndDailyBudgetsAdmitExactlyWhatFixedUtcWindowsAllow(string kind)
    {
        var op = Gen.Select(Gen.Int[0, 2], Gen.Long[0, 300], Gen.Int[0, 1_500_000], Gen.Long[0, 400]);
        Gen.Select(Gen.Long[1, 12], Gen.Long[200, 1500], Gen.Long[500, 4000], op.Array[1, 80]).Sample((rph, tph, tpd, ops) =>
        {
            var clock = new ManualClock(new DateTimeOffset(2026, 1, 15, 22, 10, 0, TimeSpan.Zero));
            var store = NewStore(kind, clock);
            var limits = new KeyLimits(0, 0, tpd, 0, RequestsPerHour: rph, TokensPerHour: tph);
            // The model: requests and tokens charged per UTC hour, tokens per UTC day.
            var hours = new Dictionary<long, (long Requests, long Tokens)>();
            var days = new Dictionary<long, long>();
            var open = new List<(string Lease, long Reserved, QuotaVerdict Verdict)>();
            var n = 0;
            foreach (var (step, tokens, advanceMs, actual) in ops)
            {
                var now = (clock.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks / 10;
                long hour = now / HourMicros, day = now / DayMicros;
                if (step == 0)
                {
                    var (requests, hourTokens) = hours.GetValueOrDefault(hour);
                    var dayTokens = days.GetValueOrDefault(day);
                    string? limit = null;
                    long wait = 0;
                    void Consider(bool refuses, string name, long until)
                    {
                        if (refuses && (limit is null || until > wait)) (limit, wait) = (name, until);
                    }
                    Consider(requests + 1 > rph, QuotaLimits.RequestsPerHour, (hour + 1) * HourMicros - now);
                    Consider(hourTokens + tokens > tph, QuotaLimits.TokensPerHour, (hour + 1) * HourMicros - now);
                    Consider(dayTokens + tokens > tpd, QuotaLimits.TokensPerDay, (day + 1) * DayMicros - now);

                    var verdict = store.AdmitAsync("k", limits, tokens, $"l{n++}", default).AsTask().GetAwaiter().GetResult();
                    var context = $"{kind}: {tokens} tokens at {clock.GetUtcNow():O} with {requests}/{rph} requests, {hourTokens}/{tph} tokens this hour, {dayTokens}/{tpd} today";
                    Assert.True(limit == verdict.Limit, $"{context}: expected {limit ?? "admission"}, got {verdict.Limit ?? "admission"}");
                    Assert.Equal(hour, verdict.Hour);
                    Assert.Equal((hour + 1) * HourMicros - now, verdict.ResetHourMicros);
                    if (verdict.Admitted)
                    {
                        (requests, hourTokens) = hours[hour] = (requests + 1, hourTokens + tokens);
                        days[day] = dayTokens + tokens;
                        open.Add(($"l{n - 1}", tokens, verdict));
                    }
                    else Assert.True(wait == verdict.RetryAfterMicros, $"{context}: retry {verdict.RetryAfterMicros} µs, expected {wait}");
                    Assert.Equal(rph - requests, verdict.RemainingRequestsPerHour);
                    Assert.Equal(Math.Max(0, tph - hourTokens), verdict.RemainingTokensPerHour);
                }
                else if (step == 1 && open.Count > 0)
                {
                    var pick = (int)(actual % open.Count);
                    var (lease, reserved, admitted) = open[pick];
                    open.RemoveAt(pick);
                    store.SettleAsync("k", limits, lease, reserved, actual, admitted, default).AsTask().GetAwaiter().GetResult();
                    // The correction lands on the hour and day the reservation was charged to, never below 0.
                    var charged = hours[admitted.Hour];
                    hours[admitted.Hour] = charged with { Tokens = Math.Max(0, charged.Tokens + actual - reserved) };
                    days[admitted.Day] = Math.Max(0, days[admitted.Day] + actual - reserved);
                }
                else clock.Advance(TimeSpan.FromMilliseconds(advanceMs));
            }
        }, iter: 200);
    }
}
