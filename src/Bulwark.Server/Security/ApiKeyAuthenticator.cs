using Bulwark.Server.Requests;
using Bulwark.Server.Storage;
namespace Bulwark.Server.Security;

/// <summary>Why a presented credential was refused; recorded in audit, never told to the client.</summary>
public enum AuthFailure { None, Malformed, UnknownKey, WrongSecret, Revoked, Expired, Retired }

/// <summary>
/// Turns a presented bearer token into a <see cref="Caller"/>: parse the id, find the key (cached),
/// verify the HMAC in constant time (or recognise, in constant time, the credential that verified
/// last, <see cref="CachedKey"/>), then check revocation, expiry and the end of a rotation's grace
/// against the stored instants and this request's time, so a cached key stops working on time.
/// The metrics token is checked the same way against its own HMAC.
/// </summary>
public sealed class ApiKeyAuthenticator
{
    private readonly KeyCache _keys;
    private readonly ApiKeyHasher _hasher;
    private readonly TimeProvider _time;
    private readonly byte[]? _metricsTokenHash;
    private static readonly byte[] NoHash = new byte[32];

    public ApiKeyAuthenticator(KeyCache keys, ApiKeyHasher hasher, TimeProvider time, string? metricsToken)
    {
        _keys = keys;
        _hasher = hasher;
        _time = time;
        if (!string.IsNullOrEmpty(metricsToken))
        {
            if (metricsToken.Length < 32)
                throw new InvalidOperationException($"Bulwark:Security:MetricsToken must be at least 32 characters; got {metricsToken.Length}");
            _metricsTokenHash = Convert.FromBase64String(hasher.Hash(metricsToken));
        }
    }

    public async ValueTask<(Caller? Caller, AuthFailure Failure)> AuthenticateAsync(string token, CancellationToken ct)
    {
        if (!ApiKeyFormat.TryParse(token, out var idSpan, out var adminForm))
        {
            if (_metricsTokenHash is not null && _hasher.Verify(token, _metricsTokenHash))
                return (MetricsCaller, AuthFailure.None);
            return (null, AuthFailure.Malformed);
        }

        var key = await _keys.GetAsync(idSpan, ct);
        var record = key.Record;
        // The credential that verified last time needs no HMAC (see CachedKey); any other goes the whole way.
        var matches = key.IsVerified(token);
        if (!matches)
        {
            Span<byte> stored = stackalloc byte[32];
            var hashOk = record is not null && Convert.TryFromBase64String(record.Hash, stored, out var n) && n == 32;
            // Verify even for an unknown id, so timing says nothing about which secrets are close.
            matches = _hasher.Verify(token, hashOk ? stored : NoHash) && hashOk;
            if (matches) key.RememberVerified(token);
        }
        if (record is null) return (null, AuthFailure.UnknownKey);
        if (!matches || record.IsAdmin != adminForm) return (null, AuthFailure.WrongSecret);
        if (record.Revoked) return (null, AuthFailure.Revoked);
        var now = _time.GetUtcNow();
        if (record.IsExpired(now)) return (null, AuthFailure.Expired);
        if (record.IsRetired(now)) return (null, AuthFailure.Retired);

        _keys.MarkUsed(record.Id, now);
        return (CallerOf(record), AuthFailure.None);
    }

    /// <summary>The metrics token's caller: it reaches /metrics and nothing else.</summary>
    private static readonly Caller MetricsCaller = new() { KeyId = "metrics-token", KeyName = "metrics-token", Scopes = Scopes.MetricsToken, IsKey = false };

    /// <summary>The caller a stored key makes: admin keys get the admin scopes, API keys the inference scope.</summary>
    public static Caller CallerOf(ApiKeyRecord record) => new()
    {
        KeyId = record.Id,
        Tenant = record.Tenant,
        KeyName = record.Name,
        Scopes = record.IsAdmin ? Scopes.AdminKey : Scopes.ApiKey,
        Limits = record.Limits,
        Priority = record.Priority,
        IsAdmin = record.IsAdmin,
        Models = record.Models,
        Guard = record.Guard,
    };
}
