using System.Diagnostics;
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
            var usage = context.Features.Get<RequestUsage>();
            if (usage?.RejectionReason is { } reason)
                metrics.Rejected.Add(1, new KeyValuePair<string, object?>("reason", reason.Split(':')[0]));
            // The HTTP server span (ASP.NET Core's, when tracing is on): who asked and why it was refused, never what was asked.
            if (Activity.Current is { IsAllDataRequested: true } span && span.Source.Name == "Microsoft.AspNetCore") Tag(span, context, usage);
        }
    }

    private static void Tag(Activity span, HttpContext context, RequestUsage? usage)
    {
        span.SetTag(BulwarkTracing.Attributes.RequestId, context.TraceIdentifier);
        if (context.GetCaller() is { } caller)
        {
            span.SetTag(BulwarkTracing.Attributes.KeyId, caller.KeyId);
            if (caller.Tenant.Length > 0) span.SetTag(BulwarkTracing.Attributes.Tenant, caller.Tenant);
        }
        if (usage is null) return;
        if (usage.Model is { } model) span.SetTag(BulwarkTracing.Attributes.RequestModel, model);
        if (usage.RejectionReason is { } reason)
        {
            span.SetTag(BulwarkTracing.Attributes.RefusalReason, reason);
            span.SetStatus(ActivityStatusCode.Error, reason);
        }
    }
}
