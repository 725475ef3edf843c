using Bulwark.Server.Admin;
using Bulwark.Server.Api;
using Bulwark.Server.OperatorConsole;
using Bulwark.Server.Observability;
using Bulwark.Server.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Bulwark.Server.Hosting;

/// <summary>
/// The middleware half of the way of one request (docs/architecture.md, "The spine"): the stages
/// every route shares, in order. The generation stages that follow identity (policy, contract,
/// input guard, prompt, token quota, admission, backend, output guard, settlement) run in
/// <see cref="Spine.GenerationSpine"/>, in one place.
/// </summary>
public static class RequestPipeline
{
    /// <param name="secured">False only in tests of the bare API: identity, audit and the admin routes are then absent.</param>
    public static void Use(WebApplication app, bool secured = true)
    {
        // 10 Meter (HTTP part): outermost, so it sees the final status of every request, refusals included.
        app.UseMiddleware<RequestMetricsMiddleware>();
        // 10 Meter (audit part): a record of every request the identity stage saw, with its final status.
        if (secured) app.UseBulwarkAudit();
        // 1 Edge: every failure answered in OpenAI's shape; a request id on every response. Body size,
        //   header and body-rate limits are Kestrel's, set in BulwarkServer from ServerOptions/ApiLimits.
        app.UseMiddleware<ApiErrorMiddleware>();
        app.UseMiddleware<RequestIdMiddleware>();
        app.UseRouting();
        // 2 Identity: IP block list, API key (or metrics token) → Caller with scopes; 401/403 here.
        if (secured) app.UseBulwarkSecurity();
        // 3–10 for generation routes: GenerationSpine, called by each route after it parsed its body.
        ApiRoutes.Map(app);
        if (secured) app.MapBulwarkAdmin();
        if (secured) app.MapModelAdmin();
        if (secured) app.MapPrefixCacheAdmin();
        // The console authenticates by its own session (SessionRouteAttribute), mapped only where it is to be served.
        if (secured && app.Services.GetService<ConsoleOptions>() is not null) app.MapBulwarkConsole();
    }
}
