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

    private static IQuotaStore NewStore(string kind, TimeProvider clock) => kind switch
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
}
