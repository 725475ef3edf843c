using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Security;

/// <summary>
/// Stages 1–2 of the spine: refuse blocked addresses, let only the public paths through without
/// credentials, authenticate everything else, check the endpoint's scope and attach the
/// <see cref="Caller"/>. Runs after routing so it sees endpoint metadata; unmatched paths still need
/// credentials, so probing for routes without a key learns nothing. A refusal records its reason on
/// the request's <see cref="RequestUsage"/>, which the audit stage around it writes.
/// </summary>
public sealed class SecurityMiddleware(RequestDelegate next, ApiKeyAuthenticator authenticator, IpBlockList blocks, SecurityOptions options)
{
    private readonly HashSet<string> _publicPaths = new(options.PublicPaths, StringComparer.OrdinalIgnoreCase);

    public async Task InvokeAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "/";
        if (_publicPaths.Contains(path) && !blocks.IsBlocked(context.Connection.RemoteIpAddress))
        {
            await next(context);
            return;
        }
        // The identity stage's span: the key id when it passes, the refusal reason when it does not (never the key).
        var span = BulwarkTracing.Start(BulwarkTracing.Identity);
        bool admitted;
        try
        {
            admitted = await IdentifyAsync(context);
        }
        catch (Exception e)
        {
            BulwarkTracing.Fail(span, BulwarkTracing.ReasonOf(e, context.Features.Get<RequestUsage>()));
            throw;
        }
        if (span is not null)
        {
            if (context.GetCaller() is { } known) span.SetTag(BulwarkTracing.Attributes.KeyId, known.KeyId);
            if (admitted) span.Stop();
            else BulwarkTracing.Fail(span, context.GetRequestUsage().RejectionReason ?? "refused");
        }
        if (admitted) await next(context);
    }

    /// <summary>Stages 1–2 without the rest: true when the request may go on; otherwise the refusal has been written.</summary>
    private async Task<bool> IdentifyAsync(HttpContext context)
    {
        if (blocks.IsBlocked(context.Connection.RemoteIpAddress))
        {
            await RefuseAsync(context, StatusCodes.Status403Forbidden, "ip_blocked", "permission_error", "Requests from this address are blocked.");
            return false;
        }

        // The console's routes check their own session (and refuse without one); a bearer key is not theirs to read.
        if (context.GetEndpoint()?.Metadata.GetMetadata<SessionRouteAttribute>() is not null) return true;

        Caller? caller = null;
        var outcome = CredentialReader.Read(context.Request, out var token);
        var failure = outcome == CredentialReader.Outcome.Found ? AuthFailure.None : AuthFailure.Malformed;
        if (outcome == CredentialReader.Outcome.Found)
        {
            try { (caller, failure) = await authenticator.AuthenticateAsync(token.ToString(), context.RequestAborted); }
            catch (KeyStoreUnavailableException)
            {
                // The key is not cached and the store is down: neither let through nor called invalid.
                await RefuseAsync(context, StatusCodes.Status503ServiceUnavailable, "key_store_unavailable", "server_error",
                    "API keys cannot be checked right now (the key store is unreachable); retry in a few seconds.");
                return false;
            }
        }
        if (caller is null)
        {
            await RefuseAsync(context, StatusCodes.Status401Unauthorized, Reason(outcome, failure), "invalid_request_error",
                outcome switch
                {
                    CredentialReader.Outcome.Missing => "Missing API key: send it as 'Authorization: Bearer <key>'.",
                    CredentialReader.Outcome.InQueryString => "API keys in the URL are refused: send the key as 'Authorization: Bearer <key>'.",
                    CredentialReader.Outcome.Ambiguous => "Send exactly one Authorization header.",
                    CredentialReader.Outcome.Malformed => "Malformed Authorization header: expected 'Bearer <key>'.",
                    _ => "Invalid API key.",
                });
            return false;
        }

        // Known from here on, refused or not: the audit record names the key.
        context.SetCaller(caller);
        var scope = context.GetEndpoint()?.Metadata.GetMetadata<RequireScopeAttribute>()?.Scope ?? Scopes.Inference;
        if (!caller.HasScope(scope))
        {
            await RefuseAsync(context, StatusCodes.Status403Forbidden, "missing_scope:" + scope, "permission_error",
                $"This key may not use this route (it needs the '{scope}' scope).");
            return false;
        }
        context.Response.Headers["x-request-id"] = context.TraceIdentifier;
        return true;
    }

    private static Task RefuseAsync(HttpContext context, int status, string reason, string type, string message)
    {
        context.GetRequestUsage().RejectionReason = reason;
        var code = status == StatusCodes.Status401Unauthorized ? "invalid_api_key" : RequestUsage.ReasonCode(reason);
        return ErrorResponse.WriteAsync(context, new ApiException(status, message, type, null, code,
            status == StatusCodes.Status503ServiceUnavailable ? TimeSpan.FromSeconds(1) : null)
        {
            Headers = status == StatusCodes.Status401Unauthorized ? Challenge : null,
        });
    }

    private static readonly Dictionary<string, string> Challenge = new() { ["WWW-Authenticate"] = "Bearer" };

    private static string Reason(CredentialReader.Outcome outcome, AuthFailure failure) => outcome switch
    {
        CredentialReader.Outcome.Missing => "missing_credentials",
        CredentialReader.Outcome.InQueryString => "key_in_query_string",
        CredentialReader.Outcome.Ambiguous => "ambiguous_credentials",
        CredentialReader.Outcome.Malformed => "malformed_credentials",
        _ => FailureReason(failure),
    };

    /// <summary>The audit reason of a key that was read but refused (<c>invalid_key:revoked</c>, ...).</summary>
    internal static string FailureReason(AuthFailure failure) => failure switch
    {
        AuthFailure.UnknownKey => "invalid_key:unknown",
        AuthFailure.WrongSecret => "invalid_key:secret",
        AuthFailure.Revoked => "invalid_key:revoked",
        AuthFailure.Expired => "invalid_key:expired",
        AuthFailure.Retired => "invalid_key:retired",
        _ => "invalid_key:malformed",
    };
}
