using System.Net;

namespace Bulwark.Server.Backends.Upstream;

/// <summary>
/// One attempt on one endpoint failed before anything reached the client. <see cref="Outcome"/> is the
/// metric label (<c>connect_error</c>, <c>timeout</c>, <c>server_error</c>, <c>rate_limited</c>,
/// <c>breaker_open</c>, <c>saturated</c>, <c>stream_error</c>); <see cref="Transient"/> ones are retried
/// on another endpoint.
/// </summary>
internal sealed class UpstreamAttemptException(UpstreamEndpoint? endpoint, string outcome, bool transient, HttpStatusCode? status = null, Exception? inner = null)
    : Exception($"upstream attempt failed: {outcome}{(status is { } s ? $" (HTTP {(int)s})" : "")}", inner)
{
    public UpstreamEndpoint? Endpoint { get; } = endpoint;
    public string Outcome { get; } = outcome;
    public bool Transient { get; } = transient;
    public HttpStatusCode? Status { get; } = status;

    /// <summary>The upstream's <c>Retry-After</c>, when it sent one with a 429 or 503.</summary>
    public TimeSpan? RetryAfter { get; init; }
}
