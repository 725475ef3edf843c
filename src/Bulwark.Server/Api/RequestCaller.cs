using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Api;

/// <summary>
/// Who is asking, as far as generation cares: the tenant (isolates prefix-cache entries) and
/// the priority (orders the admission queue). The identity stage sets it with <see cref="Set"/>;
/// without one, every request is the anonymous tenant at priority 0.
/// </summary>
public sealed record RequestCaller(string? Tenant, int Priority)
{
    public static readonly RequestCaller Anonymous = new(null, 0);

    public static RequestCaller Of(HttpContext context) => context.Features.Get<RequestCaller>() ?? Anonymous;

    public static void Set(HttpContext context, RequestCaller caller) => context.Features.Set(caller);
}
