using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Api;

/// <summary>
/// Gives every request an id, echoed as <c>x-request-id</c> and used in logs and 500 messages.
/// A caller's own id is kept only when short and plain, so it cannot inject into logs.
/// </summary>
public sealed class RequestIdMiddleware(RequestDelegate next)
{
    public const string Header = "x-request-id";

    public Task InvokeAsync(HttpContext context)
    {
        var incoming = context.Request.Headers[Header].ToString();
        if (incoming.Length is > 0 and <= 64 && incoming.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            context.TraceIdentifier = incoming;
        context.Response.Headers[Header] = context.TraceIdentifier;
        return next(context);
    }
}
