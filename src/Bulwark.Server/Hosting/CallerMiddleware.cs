using Bulwark.Server.Requests;
using Bulwark.Server.Api;
using Bulwark.Server.Security;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Hosting;

/// <summary>
/// Hands the identity stage's <see cref="Caller"/> to the generation side as a
/// <see cref="RequestCaller"/>: its tenant isolates the prefix cache, its priority orders admission.
/// </summary>
public sealed class CallerMiddleware(RequestDelegate next)
{
    public Task InvokeAsync(HttpContext context)
    {
        if (context.GetCaller() is { } caller) RequestCaller.Set(context, new RequestCaller(caller.Tenant, caller.Priority));
        return next(context);
    }
}
