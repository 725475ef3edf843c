using Bulwark.Server.Audit;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Bulwark.Server.Observability;

/// <summary>
/// The meter stage for HTTP: counts every answered request by route and status and records its
/// end-to-end latency. The route label is the matched route template, never the raw path, so
/// the number of series stays bounded whatever clients send.
/// </summary>
public sealed class RequestMetricsMiddleware(RequestDelegate next, ServerMetrics metrics, TimeProvider time)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var start = time.GetTimestamp();
        try
        {
            await next(context);
        }
        finally
        {
            var route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
            var status = context.Response.StatusCode;
            metrics.Requests.Add(1, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("status", status));
            metrics.RequestDuration.Record(time.GetElapsedTime(start).TotalSeconds, new KeyValuePair<string, object?>("route", route));
            // Refusals by the security front (auth, IP block, model ACL, quotas) leave their reason on the usage record;
            // only the part before ':' is a label, so the number of series stays bounded.
            if (context.Features.Get<RequestUsage>()?.RejectionReason is { } reason)
                metrics.Rejected.Add(1, new KeyValuePair<string, object?>("reason", reason.Split(':')[0]));
        }
    }
}
