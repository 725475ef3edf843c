namespace Bulwark.Server.Quotas;

/// <summary>Names of the limits a request can hit, as audit reasons and error codes use them.</summary>
public static class QuotaLimits
{
    public const string Requests = "requests";
    public const string Tokens = "tokens";
    public const string TokensPerDay = "tokens_per_day";
    public const string Concurrency = "concurrency";
}

/// <summary>
/// A quota store's answer. Times are microseconds. Remaining counts are -1 for a limit the key does
/// not have. <see cref="TokensReservedUntil"/> is the tokens/min TAT right after this admission
/// (µs since the Unix epoch): settlement refunds at most the part of the reservation not yet
/// drained by time, so a refund never hands back capacity the bucket had regained anyway. (Both
/// stores add the refunds made before the admission to it, so settlement can tell how far later
/// refunds may have moved the lease's slot; only the store that issued it reads it back.)
/// <see cref="Day"/> is the UTC day (days since the Unix epoch, by the store's clock) the
/// daily budget was charged to; settlement passes it back so a refund never lands on the next day.
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
    long TokensReservedUntil = 0);
