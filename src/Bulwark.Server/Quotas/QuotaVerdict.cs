namespace Bulwark.Server.Quotas;

/// <summary>Names of the limits a request can hit, as audit reasons and error codes use them.</summary>
public static class QuotaLimits
{
    public const string Requests = "requests";
    public const string RequestsPerHour = "requests_per_hour";
    public const string Tokens = "tokens";
    public const string TokensPerHour = "tokens_per_hour";
    public const string TokensPerDay = "tokens_per_day";
    public const string Concurrency = "concurrency";
}

/// <summary>
/// A quota store's answer. Times are microseconds. Remaining counts are -1 for a limit the key does
/// not have (or that the call did not check); they describe the key's state after this call, so
/// after a refusal they are what is left without this request. A refusal names the limit that keeps
/// the request out longest, and <see cref="RetryAfterMicros"/> is when that limit lets it through.
/// <see cref="TokensReservedUntil"/> is the tokens/min TAT right after this admission
/// (µs since the Unix epoch): settlement refunds at most the part of the reservation not yet
/// drained by time, so a refund never hands back capacity the bucket had regained anyway. (Both
/// stores add the refunds made before the admission to it, so settlement can tell how far later
/// refunds may have moved the lease's slot; only the store that issued it reads it back.)
/// <see cref="Day"/> and <see cref="Hour"/> are the UTC day and hour (since the Unix epoch, by the
/// store's clock) the daily and hourly budgets were charged to; settlement passes them back so a
/// refund never lands on the next day or hour. <see cref="ResetHourMicros"/> is the time left until
/// the hourly counters start again.
/// </summary>
public readonly record struct QuotaVerdict(
    bool Admitted,
    string? Limit,
    long RetryAfterMicros,
    long RemainingRequests,
    long ResetRequestsMicros,
    long RemainingTokens,
    long ResetTokensMicros,
    long Day,
    long TokensReservedUntil = 0,
    long Hour = 0,
    long RemainingRequestsPerHour = -1,
    long RemainingTokensPerHour = -1,
    long ResetHourMicros = 0);
