using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Incidents;

/// <summary>Lists every authenticated request in <see cref="ActiveRequests"/> while it runs, so an operator can see and cancel it.</summary>
public sealed class ActiveRequestsMiddleware(RequestDelegate next, ActiveRequests active, TimeProvider time)
{
    public async Task InvokeAsync(HttpContext context)
    {
        if (context.GetCaller() is not { } caller)
        {
            await next(context);
            return;
        }
        var requestId = context.TraceIdentifier;
        active.Add(new ActiveRequest(requestId, caller.KeyId, caller.Tenant, context.Request.Path.Value ?? "/", time.GetUtcNow()), context);
        try
        {
            await next(context);
        }
        finally
        {
            active.Remove(requestId);
        }
    }
}
