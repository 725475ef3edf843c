using Bulwark.Server.Audit;
using Bulwark.Server.Security;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Quotas;

/// <summary>
/// The policy stage's quota check, called once the request's token need is known (prompt tokens +
/// max_tokens): admits or answers 429. An admitted request holds a <see cref="QuotaLease"/> until it
/// ends, which settles the real token count (refunding the unused part) and frees its concurrency slot.
/// </summary>
public sealed class QuotaGate(IQuotaStore store)
{
    /// <summary>
    /// Admits the request and writes the rate-limit headers, or writes the 429 answer and returns
    /// null. Callers return at once on null; the response is complete.
    /// </summary>
    public async ValueTask<QuotaLease?> AdmitAsync(HttpContext context, Caller caller, long tokens, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        var limits = caller.Limits;
        var leaseId = LeaseIds.Next(); // unique across replicas, unlike TraceIdentifier
        var verdict = await store.AdmitAsync(caller.KeyId, limits, tokens, leaseId, ct);
        RateLimitHeaders.Write(context.Response.Headers, limits, verdict);
        if (verdict.Admitted) return new QuotaLease(store, caller.KeyId, limits, leaseId, tokens, verdict);

        context.GetRequestUsage().RejectionReason = "rate_limit:" + verdict.Limit;
        await ErrorResponse.WriteAsync(context, StatusCodes.Status429TooManyRequests, "rate_limit_exceeded", verdict.Limit!,
            Message(verdict.Limit!, limits, tokens));
        return null;
    }

    private static string Message(string limit, KeyLimits limits, long tokens) => limit switch
    {
        QuotaLimits.Requests => $"Rate limit reached: this key allows {limits.RequestsPerMinute} requests per minute.",
        QuotaLimits.Tokens when tokens > limits.TokensPerMinute =>
            $"Request too large: it needs {tokens} tokens (prompt + max_tokens) and this key allows {limits.TokensPerMinute} tokens per minute.",
        QuotaLimits.Tokens => $"Rate limit reached: this key allows {limits.TokensPerMinute} tokens per minute; this request needs {tokens}.",
        QuotaLimits.TokensPerDay => $"Daily token budget reached: this key allows {limits.TokensPerDay} tokens per day; this request needs {tokens}.",
        _ => $"Too many concurrent requests: this key allows {limits.MaxConcurrent} at a time.",
    };
}

/// <summary>An admitted request's hold on its quota; settle it with the real token count when it ends.</summary>
public sealed class QuotaLease : IAsyncDisposable
{
    private readonly IQuotaStore _store;
    private readonly string _keyId;
    private readonly KeyLimits _limits;
    private readonly string _leaseId;
    private readonly QuotaVerdict _admitted;
    private int _settled;

    internal QuotaLease(IQuotaStore store, string keyId, KeyLimits limits, string leaseId, long reserved, QuotaVerdict admitted)
    {
        _store = store;
        _keyId = keyId;
        _limits = limits;
        _leaseId = leaseId;
        Reserved = reserved;
        _admitted = admitted;
    }

    public long Reserved { get; }

    /// <summary>Charges <paramref name="actualTokens"/> instead of the reservation and frees the concurrency slot. Once only.</summary>
    public ValueTask SettleAsync(long actualTokens, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(actualTokens);
        if (Interlocked.Exchange(ref _settled, 1) == 1) return ValueTask.CompletedTask;
        return _store.SettleAsync(_keyId, _limits, _leaseId, Reserved, actualTokens, _admitted, CancellationToken.None);
    }

    /// <summary>Without a settlement the whole reservation stays charged (the safe side).</summary>
    public ValueTask DisposeAsync() => SettleAsync(Reserved);
}
