using System.Diagnostics;
using Bulwark.Server.Audit;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Bulwark.Server.Observability;

/// <summary>
/// The meter stage for HTTP: counts every answered request by route and status and records its
/// end-to-end latency. The route label is the matched route template, never the raw path, so
/// the number of series stays bounded whatever clients send. Also counts each authenticated key's
/// tokens and refusals (<c>bulwark_key_tokens_total</c>, <c>bulwark_key_refusals_total</c>), labelled by
/// issued key ids only, never by what a client sent (an unknown key's id or an address would let any
/// client create series), so the series stay as many as the keys.
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
                metrics.Rejected.Add(1, new KeyValuePair<string, object?>("reason", RequestUsage.ReasonCode(reason)));
            if (context.GetCaller() is { } caller && usage is not null) CountKey(caller, usage);
            // The HTTP server span (ASP.NET Core's, when tracing is on): who asked and why it was refused, never what was asked.
            if (Activity.Current is { IsAllDataRequested: true } span && span.Source.Name == "Microsoft.AspNetCore") Tag(span, context, usage);
        }
    }

    private void CountKey(Caller caller, RequestUsage usage)
    {
        var key = new KeyValuePair<string, object?>("key_id", caller.KeyId);
        var tokens = (usage.PromptTokens ?? 0) + (usage.CompletionTokens ?? 0);
        if (tokens > 0) metrics.KeyTokens.Add(tokens, key);
        if (usage.RejectionReason is { } reason)
            metrics.KeyRefusals.Add(1, key, new KeyValuePair<string, object?>("reason", RequestUsage.ReasonCode(reason)));
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
