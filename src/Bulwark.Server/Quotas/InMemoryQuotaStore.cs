using System.Collections.Concurrent;
using System.Diagnostics;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;

namespace Bulwark.Server.Quotas;

/// <summary>
/// Quota state for a single replica. GCRA keeps one number per limit (the theoretical arrival time,
/// TAT): a request costing <c>n</c> moves it by <c>n × (60 s / limit)</c> and is admitted while the TAT
/// stays within one minute of now. The Redis script (<see cref="QuotaScripts"/>) is the same algorithm.
/// </summary>
public sealed class InMemoryQuotaStore(TimeProvider time) : IQuotaStore
{
    internal const double Window = 60_000_000;          // µs: every per-minute limit allows one minute's burst
    internal const double Day = 86_400_000_000;         // µs
    internal const double Tolerance = 0.5;              // µs: absorbs rounding in sums of fractional intervals
    internal const long ConcurrencyRetryMicros = 1_000_000;

    private readonly ConcurrentDictionary<string, KeyState> _states = new(StringComparer.Ordinal);

    private sealed class KeyState
    {
        public readonly Lock Gate = new();
        public double RequestTat;
        public double TokenTat;
        /// <summary>Total µs of token time refunded so far; see <see cref="SettleAsync"/>.</summary>
        public double TokenRefunded;
        public long Day;
        public long DayUsed;
        public long Concurrent;
    }

    private double NowMicros() => (time.GetUtcNow().UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10.0;

    public ValueTask<QuotaVerdict> AdmitAsync(string keyId, KeyLimits limits, long tokens, string leaseId, CancellationToken ct)
    {
        var state = _states.GetOrAdd(keyId, static _ => new KeyState());
        var now = NowMicros();
        var day = (long)Math.Floor(now / Day);
        lock (state.Gate)
        {
            long remR = -1, remT = -1;
            double resetR = 0, resetT = 0, newR = state.RequestTat, newT = state.TokenTat;
            if (limits.RequestsPerMinute > 0)
            {
                var interval = Window / limits.RequestsPerMinute;
                var from = Math.Max(state.RequestTat, now);
                newR = from + interval;
                if (newR - now > Window + Tolerance)
                    return Reject(QuotaLimits.Requests, newR - now - Window, Remaining(from - now, interval), from - now, -1, 0, day);
                remR = Remaining(newR - now, interval);
                resetR = newR - now;
            }
            if (limits.TokensPerMinute > 0 && tokens > 0)
            {
                var interval = Window / limits.TokensPerMinute;
                var from = Math.Max(state.TokenTat, now);
                newT = from + tokens * interval;
                if (tokens > limits.TokensPerMinute || newT - now > Window + Tolerance)
                    return Reject(QuotaLimits.Tokens, Math.Min(newT - now - Window, Window), remR, resetR, Remaining(from - now, interval), from - now, day);
                remT = Remaining(newT - now, interval);
                resetT = newT - now;
            }
            var used = state.Day == day ? state.DayUsed : 0;
            if (limits.TokensPerDay > 0 && used + tokens > limits.TokensPerDay)
                return Reject(QuotaLimits.TokensPerDay, (day + 1) * Day - now, remR, resetR, remT, resetT, day);
            if (limits.MaxConcurrent > 0 && state.Concurrent >= limits.MaxConcurrent)
                return Reject(QuotaLimits.Concurrency, ConcurrencyRetryMicros, remR, resetR, remT, resetT, day);

            state.RequestTat = newR;
            state.TokenTat = newT;
            state.Day = day;
            state.DayUsed = used + tokens;
            // Like the Redis script, a lease holds a slot only where the key has a concurrency limit.
            if (limits.MaxConcurrent > 0) state.Concurrent++;
            // The lease remembers where its slot ended plus the refunds made so far (see SettleAsync).
            return ValueTask.FromResult(new QuotaVerdict(true, null, 0, remR, (long)Math.Ceiling(resetR), remT, (long)Math.Ceiling(resetT), day,
                (long)Math.Floor(newT + state.TokenRefunded)));
        }
    }

    public ValueTask SettleAsync(string keyId, KeyLimits limits, string leaseId, long reserved, long actual, QuotaVerdict admitted, CancellationToken ct)
    {
        if (!_states.TryGetValue(keyId, out var state)) return ValueTask.CompletedTask;
        var now = NowMicros();
        var delta = actual - reserved;
        lock (state.Gate)
        {
            if (limits.TokensPerMinute > 0 && delta != 0)
            {
                var interval = Window / limits.TokensPerMinute;
                if (delta > 0) state.TokenTat = Math.Max(state.TokenTat, now) + delta * interval;
                else
                {
                    // Refund only what of this reservation time has not already drained, and never
                    // below now (a full bucket holds one minute, no more).
                    // Refunds made since this lease was admitted may have moved its slot back; assuming
                    // they all did keeps the estimate of its end on the safe side, and it never ends
                    // after the bucket's current TAT.
                    var end = Math.Min(admitted.TokensReservedUntil - state.TokenRefunded, state.TokenTat);
                    var undrained = Math.Max(0, end - now);
                    var before = state.TokenTat;
                    state.TokenTat = Math.Max(state.TokenTat - Math.Min(-delta * interval, undrained), now);
                    state.TokenRefunded += Math.Max(0, before - state.TokenTat);
                }
            }
            if (state.Day == admitted.Day) state.DayUsed = Math.Max(0, state.DayUsed + delta);
            // Never below zero: a key whose concurrency limit was added while a lease was open settles one it never counted.
            if (limits.MaxConcurrent > 0) state.Concurrent = Math.Max(0, state.Concurrent - 1);
        }
        return ValueTask.CompletedTask;
    }

    internal static long Remaining(double ahead, double interval) => (long)Math.Floor((Window - ahead) / interval + 1e-6);

    private static ValueTask<QuotaVerdict> Reject(string limit, double retry, long remR, double resetR, long remT, double resetT, long day) =>
        ValueTask.FromResult(new QuotaVerdict(false, limit, (long)Math.Ceiling(Math.Max(retry, 1)), remR, (long)Math.Ceiling(resetR), remT,
            (long)Math.Ceiling(resetT), day));
}
