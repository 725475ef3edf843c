using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Incidents;

/// <summary>One request in flight, as the admin API lists it.</summary>
public sealed record ActiveRequest(string RequestId, string KeyId, string Tenant, string Route, DateTimeOffset StartedAt);

/// <summary>
/// The authenticated requests this replica is serving, so an operator can see and cancel one.
/// Cancelling aborts the connection, which fires <c>RequestAborted</c> and so stops generation.
/// </summary>
public sealed class ActiveRequests
{
    private readonly ConcurrentDictionary<string, (ActiveRequest Info, HttpContext Context)> _requests = new(StringComparer.Ordinal);

    public int Count => _requests.Count;

    public void Add(ActiveRequest request, HttpContext context) => _requests[request.RequestId] = (request, context);

    public void Remove(string requestId) => _requests.TryRemove(requestId, out _);

    public IReadOnlyList<ActiveRequest> List() => _requests.Values.Select(v => v.Info).OrderBy(r => r.StartedAt).ToList();

    /// <summary>Aborts the request if this replica serves it; false otherwise.</summary>
    public bool Cancel(string requestId)
    {
        if (!_requests.TryRemove(requestId, out var entry)) return false;
        entry.Context.Abort();
        return true;
    }
}
