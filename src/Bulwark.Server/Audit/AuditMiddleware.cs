using System.Diagnostics;
using Bulwark.Server.Requests;
using Bulwark.Server.Storage;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Audit;

/// <summary>
/// Stage 10's audit record of every request the identity stage saw: authenticated ones and the ones
/// it refused (a public path such as <c>/health</c> that nobody refused is not audited). Wraps the
/// identity stage, so the record carries the final status, the latency and what the later stages
/// put on the request's <see cref="RequestUsage"/> (model, tokens, refusal reason, guard verdict).
/// </summary>
public sealed class AuditMiddleware(RequestDelegate next, AuditWriter audit, AuditOptions options, TimeProvider time)
{
    private readonly HashSet<string> _contentTenants = new(options.ContentTenants, StringComparer.Ordinal);

    public async Task InvokeAsync(HttpContext context)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            await next(context);
        }
        finally
        {
            var caller = context.GetCaller();
            var usage = context.Features.Get<RequestUsage>();
            if (caller is not null || usage?.RejectionReason is not null)
                Write(context, caller, usage, started);
        }
    }

    private void Write(HttpContext context, Caller? caller, RequestUsage? usage, long started)
    {
        audit.Enqueue(new AuditRecord
        {
            At = time.GetUtcNow(),
            Kind = AuditRecord.RequestKind,
            RequestId = context.TraceIdentifier,
            KeyId = caller?.KeyId,
            Tenant = caller?.Tenant,
            Model = usage?.Model,
            ClientIp = context.Connection.RemoteIpAddress?.ToString(),
            // The path only: a query string may carry what a client should not have sent. A key pasted into
            // the path is masked when the record is written (AuditStore), off the request path.
            Route = context.Request.Method + " " + context.Request.Path.Value,
            Status = context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted ? 499 : context.Response.StatusCode,
            PromptTokens = usage?.PromptTokens,
            CompletionTokens = usage?.CompletionTokens,
            LatencyMicroseconds = (long)Stopwatch.GetElapsedTime(started).TotalMicroseconds,
            Reason = usage?.RejectionReason,
            Detail = caller is not null && usage?.Content is { } content && _contentTenants.Contains(caller.Tenant) ? content : null,
            Guard = usage?.GuardAudit,
            Upstream = usage?.Upstream,
        });
    }
}
