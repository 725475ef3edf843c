namespace Bulwark.Server.Quotas;

/// <summary>
/// A quota store cannot decide: Redis is unreachable and the policy (or the limit) leaves no safe
/// local answer. <see cref="QuotaGate"/> turns it into 503 <c>quota_store_unavailable</c>; the message
/// is for the client and says nothing about the deployment.
/// </summary>
public sealed class QuotaStoreUnavailableException(string message) : Exception(message)
{
    /// <summary>When a client should try again: about when this replica next tries Redis.</summary>
    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(1);

    public static QuotaStoreUnavailableException RedisDown() =>
        new("Rate limits cannot be checked right now (the quota store is unreachable); retry in a few seconds.");
}
