using Bulwark.Server.Audit;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Bulwark.Server.OperatorConsole;

/// <summary>
/// The operator console under <c>/console</c> (docs/console.md): server-rendered pages over the same services the
/// admin API uses, one stylesheet and one script, all inside the assembly. Every route carries
/// <see cref="SessionRouteAttribute"/> (no bearer key; <see cref="ConsoleAccess"/> checks the session) and
/// <see cref="ConsoleAccess.FilterAsync"/>.
/// </summary>
public static class ConsoleEndpoints
{
    public const string Prefix = "/console";

    /// <summary>The longest text the sign-in form takes as a key (keys are 69 characters).</summary>
    public const int MaxKeyLength = 200;

    public static RouteGroupBuilder MapBulwarkConsole(this IEndpointRouteBuilder endpoints)
    {
        var console = endpoints.MapGroup(Prefix).WithMetadata(new SessionRouteAttribute());
        console.AddEndpointFilter(ConsoleAccess.FilterAsync);

        console.MapGet("/assets/{name}", (string name) => ConsoleAssets.Serve(name)).WithMetadata(new ConsolePublicAttribute());
        console.MapGet("/sign-in", (HttpContext context, ConsoleSessions sessions) =>
            sessions.Find(context.Request.Cookies[ConsoleAccess.CookieName]) is not null ? Results.Redirect(Prefix) : Page(SignInPage.Render(null)))
            .WithMetadata(new ConsolePublicAttribute());
        console.MapPost("/sign-in", (HttpContext context, SignInThrottle throttle, ApiKeyAuthenticator authenticator, ConsoleSessions sessions, AuditWriter audit,
            TimeProvider time) => SignInAsync(context, throttle, authenticator, sessions, audit, time)).WithMetadata(new ConsolePublicAttribute());
        console.MapPost("/sign-out", (HttpContext context, ConsoleSessions sessions, AuditWriter audit, TimeProvider time) =>
        {
            var session = context.Session()!;
            sessions.End(session);
            context.Response.Cookies.Delete(ConsoleAccess.CookieName, Cookie(context));
            audit.Enqueue(Record(context, time, "console.signed_out", session.KeyId, null));
            return Results.Redirect(Prefix + "/sign-in", preserveMethod: false);
        });

        ConsolePages.Map(console);
        // Anything else under /console: a page that says so (with the console's headers), not the API's 401.
        console.MapFallback(() => Results.Content(Layout.Bare("Not found", Html.Of($"""<p>No such console page. <a href="{Prefix}">Go to the console</a></p>""")).ToString(),
            "text/html; charset=utf-8", System.Text.Encoding.UTF8, StatusCodes.Status404NotFound)).WithMetadata(new ConsolePublicAttribute());
        return console;
    }

    /// <summary>Exchanges an admin key for a session: rate-limited per address, audited either way (never the key).</summary>
    private static async Task<IResult> SignInAsync(HttpContext context, SignInThrottle throttle, ApiKeyAuthenticator authenticator, ConsoleSessions sessions,
        AuditWriter audit, TimeProvider time)
    {
        if (!throttle.TryAttempt(context.Connection.RemoteIpAddress, out var retryAfter))
        {
            audit.Enqueue(Record(context, time, "console.sign_in_refused", null, "rate_limited"));
            context.Response.Headers.RetryAfter = ((int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Page(SignInPage.Render("Too many sign-in attempts from this address; try again later."), StatusCodes.Status429TooManyRequests);
        }
        var key = context.Request.HasFormContentType ? (await context.Request.ReadFormAsync(context.RequestAborted))["key"].ToString().Trim() : "";
        string? reason = null;
        Requests.Caller? caller = null;
        if (key.Length is 0 or > MaxKeyLength) reason = "malformed_credentials";
        else
        {
            var (found, failure) = await authenticator.AuthenticateAsync(key, context.RequestAborted);
            if (found is null) reason = SecurityMiddleware.FailureReason(failure);
            else if (!found.IsAdmin) reason = "not_admin";
            else caller = found;
        }
        if (caller is null)
        {
            audit.Enqueue(Record(context, time, "console.sign_in_refused", null, reason));
            return Page(SignInPage.Render("That is not a valid admin key."), StatusCodes.Status401Unauthorized);
        }
        // A browser that signs in again leaves its earlier session behind: end it, so one browser holds one session.
        if (sessions.Find(context.Request.Cookies[ConsoleAccess.CookieName]) is { } earlier) sessions.End(earlier);
        var (id, _) = sessions.Start(caller.KeyId);
        context.Response.Cookies.Append(ConsoleAccess.CookieName, id, Cookie(context));
        audit.Enqueue(Record(context, time, "console.signed_in", caller.KeyId, null));
        return Results.Redirect(Prefix, preserveMethod: false);
    }

    /// <summary>The session cookie: script cannot read it, no other site can send it, TLS only when served over TLS, console paths only.</summary>
    private static CookieOptions Cookie(HttpContext context) => new()
    {
        HttpOnly = true, SameSite = SameSiteMode.Strict, Secure = context.Request.IsHttps, Path = Prefix, IsEssential = true,
    };

    private static AuditRecord Record(HttpContext context, TimeProvider time, string kind, string? keyId, string? reason) => new()
    {
        At = time.GetUtcNow(), Kind = kind, KeyId = keyId, ClientIp = context.Connection.RemoteIpAddress?.ToString(),
        Route = context.Request.Method + " " + context.Request.Path.Value, Reason = reason,
    };

    public static IResult Page(Html html, int status = StatusCodes.Status200OK) =>
        Results.Content(html.ToString(), "text/html; charset=utf-8", System.Text.Encoding.UTF8, status);
}
