using Bulwark.Server.Requests;
using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Quotas;

/// <summary>
/// The headers OpenAI clients read: <c>x-ratelimit-{limit,remaining,reset}-{requests,tokens}</c>
/// (the per-minute limits; resets as durations like <c>20ms</c>, <c>1.5s</c>, <c>6m0s</c>), the same
/// three with <c>-hour</c> appended for the hourly limits (<c>x-ratelimit-remaining-requests-hour</c>,
/// reset: the time left in the UTC hour), and, on a 429, <c>Retry-After</c> (whole seconds, rounded up)
/// with <c>retry-after-ms</c>. A limit is always named; its remaining and reset only when the
/// verdict checked it.
/// </summary>
public static class RateLimitHeaders
{
    // Perf: the names are built once; these headers go out on every limited request.
    private static readonly HeaderNames Requests = new("requests"), Tokens = new("tokens"),
        RequestsPerHour = new("requests-hour"), TokensPerHour = new("tokens-hour");

    public static void Write(IHeaderDictionary headers, KeyLimits limits, in QuotaVerdict verdict)
    {
        Write(headers, Requests, limits.RequestsPerMinute, verdict.RemainingRequests, verdict.ResetRequestsMicros);
        Write(headers, Tokens, limits.TokensPerMinute, verdict.RemainingTokens, verdict.ResetTokensMicros);
        Write(headers, RequestsPerHour, limits.RequestsPerHour, verdict.RemainingRequestsPerHour, verdict.ResetHourMicros);
        Write(headers, TokensPerHour, limits.TokensPerHour, verdict.RemainingTokensPerHour, verdict.ResetHourMicros);
        if (!verdict.Admitted)
        {
            headers.RetryAfter = ((verdict.RetryAfterMicros + 999_999) / 1_000_000).ToString(CultureInfo.InvariantCulture);
            headers["retry-after-ms"] = ((verdict.RetryAfterMicros + 999) / 1000).ToString(CultureInfo.InvariantCulture);
        }
    }

    private static void Write(IHeaderDictionary headers, HeaderNames names, long limit, long remaining, long resetMicros)
    {
        if (limit <= 0) return;
        headers[names.Limit] = limit.ToString(CultureInfo.InvariantCulture);
        if (remaining < 0) return;
        headers[names.Remaining] = remaining.ToString(CultureInfo.InvariantCulture);
        headers[names.Reset] = Duration(resetMicros);
    }

    /// <summary>The three header names of one limit.</summary>
    private sealed record HeaderNames(string Limit, string Remaining, string Reset)
    {
        public HeaderNames(string suffix) : this("x-ratelimit-limit-" + suffix, "x-ratelimit-remaining-" + suffix, "x-ratelimit-reset-" + suffix) { }
    }

    /// <summary>Formats microseconds the way OpenAI's reset headers do.</summary>
    public static string Duration(long micros)
    {
        if (micros < 1_000_000) return $"{(micros + 999) / 1000}ms";
        var seconds = micros / 1_000_000.0;
        if (seconds < 60) return Math.Round(seconds, 3).ToString(CultureInfo.InvariantCulture) + "s";
        var whole = (long)Math.Ceiling(seconds);
        return whole >= 3600 ? $"{whole / 3600}h{whole % 3600 / 60}m{whole % 60}s" : $"{whole / 60}m{whole % 60}s";
    }
}
