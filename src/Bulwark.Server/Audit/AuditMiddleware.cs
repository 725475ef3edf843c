using System.Diagnostics;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using Bulwark.Server.Storage;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Audit;

/// <summary>
/// Stage 10's audit record of every request the identity stage saw: authenticated ones and the ones
/// it refused (a public path such as <c>/health</c> that nobody refused is not audited). Wraps the
/// identity stage, so the record carries the final status, the latency and what the later stages
/// put on the request's <see cref="RequestUsage"/> (model, tokens, refusal reason, guard verdict).
/// Also counts each authenticated key's tokens and refusals (<c>bulwark_key_tokens_total</c>,
/// <c>bulwark_key_refusals_total</c>): labelled by issued key ids only, never by what a client sent (an
/// unknown key's id or an address would let any client create series), so the series stay as many as the keys.
/// </summary>
public sealed class AuditMiddleware(RequestDelegate next, AuditWriter audit, AuditOptions options, TimeProvider time, ServerMetrics metrics)
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
            if (caller is not null && usage is not null) Count(caller, usage);
        }
    }

    private void Count(Caller caller, RequestUsage usage)
    {
        var key = new KeyValuePair<string, object?>("key_id", caller.KeyId);
        var tokens = (usage.PromptTokens ?? 0) + (usage.CompletionTokens ?? 0);
        if (tokens > 0) metrics.KeyTokens.Add(tokens, key);
        if (usage.RejectionReason is { } reason)
            metrics.KeyRefusals.Add(1, key, new KeyValuePair<string, object?>("reason", reason.Split(':')[0]));
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
            Guard = usage?.GuardVerdict,
            Upstream = usage?.Upstream,
        });
    }
}
