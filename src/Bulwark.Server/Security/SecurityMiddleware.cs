using System.Diagnostics;
using Bulwark.Server.Audit;
using Bulwark.Server.Incidents;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Security;

/// <summary>
/// Stages 1–2 of the spine plus the audit record: refuse blocked addresses, let only the public
/// paths through without credentials, authenticate everything else, check the endpoint's scope,
/// attach the <see cref="Caller"/>, track the request for incident control, and audit it at the end.
/// Runs after routing so it sees endpoint metadata; unmatched paths still need credentials, so
/// probing for routes without a key learns nothing.
/// </summary>
public sealed class SecurityMiddleware(
    RequestDelegate next, ApiKeyAuthenticator authenticator, IpBlockList blocks, ActiveRequests active,
    AuditWriter audit, AuditOptions auditOptions, SecurityOptions options, TimeProvider time)
{
    private readonly HashSet<string> _publicPaths = new(options.PublicPaths, StringComparer.OrdinalIgnoreCase);
    private readonly HashSet<string> _contentTenants = new(auditOptions.ContentTenants, StringComparer.Ordinal);

    public async Task InvokeAsync(HttpContext context)
    {
        var started = Stopwatch.GetTimestamp();
        var path = context.Request.Path.Value ?? "/";
        if (blocks.IsBlocked(context.Connection.RemoteIpAddress))
        {
            await RefuseAsync(context, null, started, StatusCodes.Status403Forbidden, "ip_blocked", "permission_error",
                "Requests from this address are blocked.");
            return;
        }
        if (_publicPaths.Contains(path))
        {
            await next(context);
            return;
        }

        Caller? caller = null;
        var outcome = CredentialReader.Read(context.Request, out var token);
        var failure = outcome == CredentialReader.Outcome.Found ? AuthFailure.None : AuthFailure.Malformed;
        if (outcome == CredentialReader.Outcome.Found)
            (caller, failure) = await authenticator.AuthenticateAsync(token.ToString(), context.RequestAborted);
        if (caller is null)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await RefuseAsync(context, null, started, StatusCodes.Status401Unauthorized, Reason(outcome, failure), "invalid_request_error",
                outcome switch
                {
                    CredentialReader.Outcome.Missing => "Missing API key: send it as 'Authorization: Bearer <key>'.",
                    CredentialReader.Outcome.InQueryString => "API keys in the URL are refused: send the key as 'Authorization: Bearer <key>'.",
                    CredentialReader.Outcome.Ambiguous => "Send exactly one Authorization header.",
                    CredentialReader.Outcome.Malformed => "Malformed Authorization header: expected 'Bearer <key>'.",
                    _ => "Invalid API key.",
                });
            return;
        }

        var scope = context.GetEndpoint()?.Metadata.GetMetadata<RequireScopeAttribute>()?.Scope ?? Scopes.Inference;
        if (!caller.HasScope(scope))
        {
            await RefuseAsync(context, caller, started, StatusCodes.Status403Forbidden, "missing_scope:" + scope, "permission_error",
                $"This key may not use this route (it needs the '{scope}' scope).");
            return;
        }

        context.SetCaller(caller);
        var requestId = context.TraceIdentifier;
        context.Response.Headers["x-request-id"] = requestId;
        active.Add(new ActiveRequest(requestId, caller.KeyId, caller.Tenant, path, time.GetUtcNow()), context);
        try
        {
            await next(context);
        }
        finally
        {
            active.Remove(requestId);
            Audit(context, caller, started, context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted ? 499 : context.Response.StatusCode, null);
        }
    }

    private async Task RefuseAsync(HttpContext context, Caller? caller, long started, int status, string reason, string type, string message)
    {
        context.GetRequestUsage().RejectionReason = reason;
        var code = status == StatusCodes.Status401Unauthorized ? "invalid_api_key" : reason.Split(':')[0];
        await ErrorResponse.WriteAsync(context, status, type, code, message);
        Audit(context, caller, started, status, reason);
    }

    private void Audit(HttpContext context, Caller? caller, long started, int status, string? reason)
    {
        var usage = context.Features.Get<RequestUsage>();
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
            Status = status,
            PromptTokens = usage?.PromptTokens,
            CompletionTokens = usage?.CompletionTokens,
            LatencyMicroseconds = (long)Stopwatch.GetElapsedTime(started).TotalMicroseconds,
            Reason = reason ?? usage?.RejectionReason,
            Detail = caller is not null && usage?.Content is { } content && _contentTenants.Contains(caller.Tenant) ? content : null,
            Guard = context.Features.Get<Guardrails.Input.InjectionVerdict>()?.ToAuditJson(),
        });
    }

    private static string Reason(CredentialReader.Outcome outcome, AuthFailure failure) => outcome switch
    {
        CredentialReader.Outcome.Missing => "missing_credentials",
        CredentialReader.Outcome.InQueryString => "key_in_query_string",
        CredentialReader.Outcome.Ambiguous => "ambiguous_credentials",
        CredentialReader.Outcome.Malformed => "malformed_credentials",
        _ => failure switch
        {
            AuthFailure.UnknownKey => "invalid_key:unknown",
            AuthFailure.WrongSecret => "invalid_key:secret",
            AuthFailure.Revoked => "invalid_key:revoked",
            AuthFailure.Expired => "invalid_key:expired",
            _ => "invalid_key:malformed",
        },
    };
}
