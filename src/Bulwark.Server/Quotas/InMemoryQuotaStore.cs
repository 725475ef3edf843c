using System.Collections.Concurrent;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Quotas;

/// <summary>
/// Quota state for a single replica. GCRA keeps one number per per-minute limit (the theoretical
/// arrival time, TAT): a request costing <c>n</c> moves it by <c>n × (60 s / limit)</c> and is
/// admitted while the TAT stays within one minute of now. The hourly and daily budgets are counters
/// of the current UTC hour and day. Every limit is checked before anything is charged, and a refusal
/// names the one that keeps the request out longest. The Redis script (<see cref="QuotaScripts"/>)
/// is the same algorithm, step for step.
/// </summary>
public sealed class InMemoryQuotaStore(TimeProvider time) : IQuotaStore
{
    internal const double Window = 60_000_000;          // µs: every per-minute limit allows one minute's burst
    internal const double Hour = 3_600_000_000;         // µs
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
        public long Hour;
        public long HourRequests;
        public long HourTokens;
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
        var hour = (long)Math.Floor(now / Hour);
        var untilHour = (hour + 1) * Hour - now;
        lock (state.Gate)
        {
            var hourRequests = state.Hour == hour ? state.HourRequests : 0;
            var hourTokens = state.Hour == hour ? state.HourTokens : 0;
            var dayUsed = state.Day == day ? state.DayUsed : 0;
            var refusal = default(Refusal);
            double newR = state.RequestTat, newT = state.TokenTat;
            if (limits.RequestsPerMinute > 0)
            {
                newR = Math.Max(state.RequestTat, now) + Window / limits.RequestsPerMinute;
                if (newR - now > Window + Tolerance) refusal.Consider(QuotaLimits.Requests, newR - now - Window);
            }
            if (limits.RequestsPerHour > 0 && hourRequests + 1 > limits.RequestsPerHour)
                refusal.Consider(QuotaLimits.RequestsPerHour, untilHour);
            if (limits.TokensPerMinute > 0 && tokens > 0)
            {
                newT = Math.Max(state.TokenTat, now) + tokens * (Window / limits.TokensPerMinute);
                if (tokens > limits.TokensPerMinute || newT - now > Window + Tolerance)
                    refusal.Consider(QuotaLimits.Tokens, Math.Min(newT - now - Window, Window));
            }
            if (limits.TokensPerHour > 0 && hourTokens + tokens > limits.TokensPerHour)
                refusal.Consider(QuotaLimits.TokensPerHour, untilHour);
            if (limits.TokensPerDay > 0 && dayUsed + tokens > limits.TokensPerDay)
                refusal.Consider(QuotaLimits.TokensPerDay, (day + 1) * Day - now);
            if (limits.MaxConcurrent > 0 && state.Concurrent >= limits.MaxConcurrent)
                refusal.Consider(QuotaLimits.Concurrency, ConcurrencyRetryMicros);

            var admitted = refusal.Limit is null;
            if (admitted)
            {
                state.RequestTat = newR;
                state.TokenTat = newT;
                state.Hour = hour;
                state.HourRequests = hourRequests += limits.RequestsPerHour > 0 ? 1 : 0;
                state.HourTokens = hourTokens += tokens;
                state.Day = day;
                state.DayUsed = dayUsed + tokens;
                // Like the Redis script, a lease holds a slot only where the key has a concurrency limit.
                if (limits.MaxConcurrent > 0) state.Concurrent++;
            }

            // The figures describe the state as it now stands: charged when admitted, untouched when refused.
            long remR = -1, remT = -1;
            double resetR = 0, resetT = 0;
            if (limits.RequestsPerMinute > 0)
            {
                resetR = Math.Max(state.RequestTat, now) - now;
                remR = Remaining(resetR, Window / limits.RequestsPerMinute);
            }
            if (limits.TokensPerMinute > 0 && tokens > 0)
            {
                resetT = Math.Max(state.TokenTat, now) - now;
                remT = Remaining(resetT, Window / limits.TokensPerMinute);
            }
            // The lease remembers where its slot ended plus the refunds made so far (see SettleAsync).
            return ValueTask.FromResult(new QuotaVerdict(admitted, refusal.Limit, admitted ? 0 : (long)Math.Ceiling(Math.Max(refusal.Wait, 1)),
                remR, (long)Math.Ceiling(resetR), remT, (long)Math.Ceiling(resetT), day,
                admitted ? (long)Math.Floor(newT + state.TokenRefunded) : 0, hour,
                limits.RequestsPerHour > 0 ? Math.Max(0, limits.RequestsPerHour - hourRequests) : -1,
                limits.TokensPerHour > 0 ? Math.Max(0, limits.TokensPerHour - hourTokens) : -1,
                (long)Math.Ceiling(untilHour)));
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
            // The counters are corrected only in the hour and day the reservation was charged to.
            if (state.Hour == admitted.Hour) state.HourTokens = Math.Max(0, state.HourTokens + delta);
            if (state.Day == admitted.Day) state.DayUsed = Math.Max(0, state.DayUsed + delta);
            // Never below zero: a key whose concurrency limit was added while a lease was open settles one it never counted.
            if (limits.MaxConcurrent > 0) state.Concurrent = Math.Max(0, state.Concurrent - 1);
        }
        return ValueTask.CompletedTask;
    }

    // Never below 0: a TAT may run past the window by the tolerance, or by more after a settlement charged extra.
    internal static long Remaining(double ahead, double interval) => Math.Max(0, (long)Math.Floor((Window - ahead) / interval + 1e-6));

    /// <summary>
    /// The refusal so far: of the limits that refuse a request, the one that keeps it out longest,
    /// so that Retry-After is when every one of them lets it through (the first to refuse may clear
    /// in a second while another holds until the hour turns).
    /// </summary>
    private struct Refusal
    {
        public string? Limit;
        public double Wait;

        public void Consider(string limit, double wait)
        {
            if (Limit is null || wait > Wait) (Limit, Wait) = (limit, wait);
        }
    }
}
