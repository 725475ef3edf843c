using Bulwark.Server.Requests;
using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Quotas;

/// <summary>
/// The headers OpenAI clients read: <c>x-ratelimit-{limit,remaining,reset}-{requests,tokens}</c>
/// (resets as durations like <c>20ms</c>, <c>1.5s</c>, <c>6m0s</c>) and, on a 429, <c>Retry-After</c>
/// (whole seconds, rounded up) with <c>retry-after-ms</c>.
/// </summary>
public static class RateLimitHeaders
{
    public static void Write(IHeaderDictionary headers, KeyLimits limits, in QuotaVerdict verdict)
    {
        if (limits.RequestsPerMinute > 0)
        {
            headers["x-ratelimit-limit-requests"] = limits.RequestsPerMinute.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-remaining-requests"] = Math.Max(0, verdict.RemainingRequests).ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-reset-requests"] = Duration(verdict.ResetRequestsMicros);
        }
        if (limits.TokensPerMinute > 0)
        {
            headers["x-ratelimit-limit-tokens"] = limits.TokensPerMinute.ToString(CultureInfo.InvariantCulture);
            if (verdict.RemainingTokens >= 0)
            {
                headers["x-ratelimit-remaining-tokens"] = verdict.RemainingTokens.ToString(CultureInfo.InvariantCulture);
                headers["x-ratelimit-reset-tokens"] = Duration(verdict.ResetTokensMicros);
            }
        }
        if (!verdict.Admitted)
        {
            headers.RetryAfter = ((verdict.RetryAfterMicros + 999_999) / 1_000_000).ToString(CultureInfo.InvariantCulture);
            headers["retry-after-ms"] = ((verdict.RetryAfterMicros + 999) / 1000).ToString(CultureInfo.InvariantCulture);
        }
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
