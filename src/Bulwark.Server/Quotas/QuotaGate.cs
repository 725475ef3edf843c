using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Quotas;

/// <summary>
/// The quota stage, in two steps so the cheapest refusal comes first. <see cref="AdmitRequestAsync"/>
/// runs before anything is parsed, scanned or tokenized: requests/min, requests/hour and concurrency,
/// which need no token count. <see cref="QuotaLease.ReserveTokensAsync"/> runs once the prompt is
/// counted: it reserves prompt + n × max_tokens against tokens/min, tokens/hour and tokens/day. A request refused at the
/// second step still counts as a request (it was made), and its concurrency slot is freed. Both steps
/// answer 429 with the rate-limit headers; the lease settles the real token count when the request ends.
/// A store that cannot decide (Redis down, <see cref="ResilientQuotaStore"/>) makes either step 503.
/// </summary>
public sealed class QuotaGate(IQuotaStore store, OpenLeases open)
{
    /// <summary>Checks requests/min, requests/hour and concurrency and opens the request's lease; throws the 429 refusal.</summary>
    /// <exception cref="ApiException">429 <c>rate_limit_exceeded</c> with the rate-limit headers; 503 <c>quota_store_unavailable</c>.</exception>
    public async ValueTask<QuotaLease> AdmitRequestAsync(HttpContext context, Caller caller, CancellationToken ct = default)
    {
        var limits = caller.Limits;
        var lease = new QuotaLease(store, open, context, caller, UniqueIds.Next()); // unique across replicas, unlike TraceIdentifier
        if (limits.RequestsPerMinute == 0 && limits.RequestsPerHour == 0 && limits.MaxConcurrent == 0) return lease;
        QuotaVerdict verdict;
        try { verdict = await store.AdmitAsync(caller.KeyId, limits with { TokensPerMinute = 0, TokensPerHour = 0, TokensPerDay = 0 }, 0, lease.Id, ct); }
        catch (QuotaStoreUnavailableException e) { throw Unavailable(context, e); }
        RateLimitHeaders.Write(context.Response.Headers, limits with { TokensPerMinute = 0, TokensPerHour = 0 }, verdict);
        if (!verdict.Admitted) throw Refused(context, limits, verdict, 0);
        lease.Opened(verdict);
        return lease;
    }

    internal static ApiException Refused(HttpContext context, KeyLimits limits, in QuotaVerdict verdict, long tokens)
    {
        context.GetRequestUsage().RejectionReason = "rate_limit:" + verdict.Limit;
        var headers = new HeaderDictionary();
        RateLimitHeaders.Write(headers, limits, verdict);
        return new ApiException(StatusCodes.Status429TooManyRequests, Message(verdict.Limit!, limits, tokens), "rate_limit_exceeded", null, verdict.Limit)
        {
            Headers = headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase),
        };
    }

    /// <summary>503 <c>quota_store_unavailable</c>: the store could not decide (docs/reliability.md).</summary>
    internal static ApiException Unavailable(HttpContext context, QuotaStoreUnavailableException e)
    {
        context.GetRequestUsage().RejectionReason = "quota_store_unavailable";
        return new ApiException(StatusCodes.Status503ServiceUnavailable, e.Message, "server_error", null, "quota_store_unavailable", QuotaStoreUnavailableException.RetryAfter);
    }

    private static string Message(string limit, KeyLimits limits, long tokens) => limit switch
    {
        QuotaLimits.Requests => $"Rate limit reached: this key allows {limits.RequestsPerMinute} requests per minute.",
        QuotaLimits.RequestsPerHour => $"Hourly request limit reached: this key allows {limits.RequestsPerHour} requests per hour (UTC clock hour).",
        QuotaLimits.Tokens when tokens > limits.TokensPerMinute => TooLarge(tokens, limits.TokensPerMinute, "minute"),
        QuotaLimits.Tokens => $"Rate limit reached: this key allows {limits.TokensPerMinute} tokens per minute; this request needs {tokens}.",
        QuotaLimits.TokensPerHour when tokens > limits.TokensPerHour => TooLarge(tokens, limits.TokensPerHour, "hour"),
        QuotaLimits.TokensPerHour => $"Hourly token budget reached: this key allows {limits.TokensPerHour} tokens per hour (UTC clock hour); this request needs {tokens}.",
        QuotaLimits.TokensPerDay => $"Daily token budget reached: this key allows {limits.TokensPerDay} tokens per day; this request needs {tokens}.",
        _ => $"Too many concurrent requests: this key allows {limits.MaxConcurrent} at a time.",
    };

    private static string TooLarge(long tokens, long limit, string per) =>
        $"Request too large: it needs {tokens} tokens (prompt + max_tokens) and this key allows {limit} tokens per {per}.";
}

/// <summary>
/// An admitted request's hold on its key's quota: its concurrency slot from admission on, its token
/// reservation once made. Settle it with the real token count when the request ends; disposing
/// without settling keeps the whole reservation charged (the safe side).
/// </summary>
public sealed class QuotaLease : IAsyncDisposable
{
    private readonly IQuotaStore _store;
    private readonly OpenLeases _open;
    private readonly HttpContext _context;
    private readonly KeyLimits _limits;
    private readonly string _keyId;
    private bool _slotOpen;
    private QuotaVerdict _tokens;
    private int _settled;

    internal QuotaLease(IQuotaStore store, OpenLeases open, HttpContext context, Caller caller, string id)
    {
        (_store, _open, _context, _limits, _keyId, Id) = (store, open, context, caller.Limits, caller.KeyId, id);
    }

    internal string Id { get; }

    /// <summary>Tokens reserved for this request so far (0 before <see cref="ReserveTokensAsync"/>).</summary>
    public long Reserved { get; private set; }

    internal void Opened(in QuotaVerdict verdict)
    {
        _slotOpen = _limits.MaxConcurrent > 0;
        if (_slotOpen) _open.Add(_keyId, Id); // renewed until settled (QuotaLeaseRenewer)
    }

    /// <summary>Reserves <paramref name="tokens"/> against tokens/min, tokens/hour and tokens/day; once per lease.</summary>
    /// <exception cref="ApiException">429 <c>rate_limit_exceeded</c> with the rate-limit headers, or 503 <c>quota_store_unavailable</c>; the concurrency slot is freed.</exception>
    public async ValueTask ReserveTokensAsync(long tokens, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        if (_limits.TokensPerMinute == 0 && _limits.TokensPerHour == 0 && _limits.TokensPerDay == 0) return;
        QuotaVerdict verdict;
        try { verdict = await _store.AdmitAsync(_keyId, _limits with { RequestsPerMinute = 0, RequestsPerHour = 0, MaxConcurrent = 0 }, tokens, Id, ct); }
        catch (QuotaStoreUnavailableException e)
        {
            await SettleAsync(0);
            throw QuotaGate.Unavailable(_context, e);
        }
        RateLimitHeaders.Write(_context.Response.Headers, _limits with { RequestsPerMinute = 0, RequestsPerHour = 0 }, verdict);
        if (!verdict.Admitted)
        {
            await SettleAsync(0);
            throw QuotaGate.Refused(_context, _limits, verdict, tokens);
        }
        _tokens = verdict;
        Reserved = tokens;
    }

    /// <summary>Charges <paramref name="actualTokens"/> instead of the reservation and frees the concurrency slot. Once only.</summary>
    public ValueTask SettleAsync(long actualTokens, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(actualTokens);
        if (Interlocked.Exchange(ref _settled, 1) == 1) return ValueTask.CompletedTask;
        // No longer renewed, whatever becomes of the settlement: a slot whose settlement is lost expires.
        if (_slotOpen) _open.Remove(Id);
        // Without a reservation there is nothing to correct: only the slot closes.
        var actual = Reserved == 0 ? 0 : actualTokens;
        if (Reserved == 0 && !_slotOpen) return ValueTask.CompletedTask;
        var limits = Reserved == 0 ? _limits with { TokensPerMinute = 0, TokensPerHour = 0, TokensPerDay = 0 } : _limits;
        if (!_slotOpen) limits = limits with { MaxConcurrent = 0 };
        return _store.SettleAsync(_keyId, limits, Id, Reserved, actual, _tokens, CancellationToken.None);
    }

    /// <summary>Without a settlement the whole reservation stays charged (the safe side).</summary>
    public ValueTask DisposeAsync() => SettleAsync(Reserved);
}
