using System.Security.Cryptography;
using System.Text;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Primitives;

namespace Bulwark.Server.OperatorConsole;

/// <summary>Endpoint metadata: a console route open without a session (the sign-in page, the static assets).</summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Class)]
public sealed class ConsolePublicAttribute : Attribute;

/// <summary>
/// Endpoint metadata: a console route the page polls (the overview's figures). It needs a session like any
/// other, but is not audited as a request of the admin key, or every open overview would write a record a second.
/// </summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Class)]
public sealed class ConsolePollAttribute : Attribute;

/// <summary>
/// The console's identity and hardening stage, run as the endpoint filter of every <c>/console</c> route:
/// security headers on every answer; for a state change (anything but GET and HEAD) an <c>Origin</c> that is
/// this server's own; then, except on public routes, a live session whose admin key is still valid (checked on
/// every request, so revoking the key ends its sessions), and for a state change the session's CSRF token
/// (form field <see cref="CsrfField"/> or header <see cref="CsrfHeader"/>), compared in constant time. The
/// session's admin key becomes the request's <see cref="Caller"/>, so admin actions name it and the audit
/// stage records the request.
/// </summary>
public static class ConsoleAccess
{
    public const string CookieName = "bulwark_console";
    public const string CsrfField = "_csrf";
    public const string CsrfHeader = "X-CSRF-Token";

    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

    private static readonly object SessionItem = new();

    /// <summary>The session of this console request (null on public routes).</summary>
    public static ConsoleSession? Session(this HttpContext context) => context.Items.TryGetValue(SessionItem, out var s) ? s as ConsoleSession : null;

    public static async ValueTask<object?> FilterAsync(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var context = invocation.HttpContext;
        var metadata = context.GetEndpoint()?.Metadata;
        var isPublic = metadata?.GetMetadata<ConsolePublicAttribute>() is not null;
        Harden(context.Response, cacheable: isPublic && context.Request.Path.StartsWithSegments(ConsoleEndpoints.Prefix + "/assets"));
        var changes = !HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method);
        if (changes && !SameOrigin(context.Request)) return Refuse(context, StatusCodes.Status403Forbidden, "cross-origin request refused");
        if (isPublic) return await next(invocation);

        var session = await LiveSessionAsync(context);
        if (session is null)
        {
            if (IsApi(context.Request)) return Refuse(context, StatusCodes.Status401Unauthorized, "sign in to the console first");
            return Results.Redirect(ConsoleEndpoints.Prefix + "/sign-in", preserveMethod: false);
        }
        if (changes && !await CsrfMatchesAsync(context.Request, session.Value.Session))
            return Refuse(context, StatusCodes.Status403Forbidden, "missing or wrong CSRF token: reload the page and try again");
        context.Items[SessionItem] = session.Value.Session;
        if (metadata?.GetMetadata<ConsolePollAttribute>() is null) context.SetCaller(session.Value.Caller);
        return await next(invocation);
    }

    /// <summary>Who did a console action, as audit records name them.</summary>
    public static string Actor(HttpContext context) => $"admin key {context.Session()?.KeyId ?? "?"} (console)";

    /// <summary>The session the cookie names, if it is live and its admin key still valid; a session whose key is not is ended.</summary>
    private static async Task<(ConsoleSession Session, Caller Caller)?> LiveSessionAsync(HttpContext context)
    {
        var sessions = context.RequestServices.GetRequiredService<ConsoleSessions>();
        if (sessions.Find(context.Request.Cookies[CookieName]) is not { } session) return null;
        var keys = context.RequestServices.GetRequiredService<KeyCache>();
        var record = (await keys.GetAsync(session.KeyId, context.RequestAborted)).Record;
        var now = context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow();
        if (record is not { IsAdmin: true, Revoked: false } || record.IsExpired(now) || record.IsRetired(now))
        {
            sessions.End(session);
            return null;
        }
        return (session, ApiKeyAuthenticator.CallerOf(record));
    }

    private static async Task<bool> CsrfMatchesAsync(HttpRequest request, ConsoleSession session)
    {
        StringValues sent = request.Headers[CsrfHeader];
        if (StringValues.IsNullOrEmpty(sent) && request.HasFormContentType) sent = (await request.ReadFormAsync(request.HttpContext.RequestAborted))[CsrfField];
        if (sent.Count != 1 || sent[0] is not { } token) return false;
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(token), Encoding.UTF8.GetBytes(session.CsrfToken));
    }

    /// <summary>
    /// A state change must come from the console's own pages. Browsers say where a request comes from in
    /// <c>Sec-Fetch-Site</c> (which no page can set): it must be <c>same-origin</c>. They also send <c>Origin</c>, which
    /// must then be this server's — except that a form posted from a page with <c>Referrer-Policy: no-referrer</c> (as
    /// every console page is) carries <c>Origin: null</c>, accepted only together with <c>Sec-Fetch-Site: same-origin</c>.
    /// A client that sends neither header is not a browser: the CSRF token alone decides.
    /// </summary>
    public static bool SameOrigin(HttpRequest request)
    {
        var site = request.Headers["Sec-Fetch-Site"];
        var sameSite = !StringValues.IsNullOrEmpty(site);
        if (sameSite && (site.Count != 1 || site[0] != "same-origin")) return false;
        var origin = request.Headers.Origin;
        if (StringValues.IsNullOrEmpty(origin)) return true;
        if (origin.Count != 1) return false;
        if (origin[0] == "null") return sameSite;
        return string.Equals(origin[0], $"{request.Scheme}://{request.Host.Value}", StringComparison.OrdinalIgnoreCase);
    }

    public static bool IsApi(HttpRequest request) => request.Path.StartsWithSegments(ConsoleEndpoints.Prefix + "/api");

    /// <summary>The headers every console answer carries; pages and figures are never cached, the static assets revalidated.</summary>
    public static void Harden(HttpResponse response, bool cacheable)
    {
        var headers = response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XFrameOptions = "DENY";
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        headers.CacheControl = cacheable ? "no-cache" : "no-store";
    }

    private static IResult Refuse(HttpContext context, int status, string message) =>
        IsApi(context.Request)
            ? Results.Json(new { error = new { message, type = "invalid_request_error", param = (string?)null, code = status == 401 ? "no_session" : "forbidden" } }, statusCode: status)
            : Results.Content(Layout.Bare("Refused", Html.Of($"<p class=\"error\">{message}</p><p><a href=\"{ConsoleEndpoints.Prefix}\">Back to the console</a></p>")).ToString(),
                "text/html; charset=utf-8", System.Text.Encoding.UTF8, status);
}
