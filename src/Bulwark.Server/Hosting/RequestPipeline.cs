using Bulwark.Server.Admin;
using Bulwark.Server.Api;
using Bulwark.Server.Observability;
using Bulwark.Server.Security;
using Microsoft.AspNetCore.Builder;

namespace Bulwark.Server.Hosting;

/// <summary>
/// THE place where the stages of a request are put in order (DESIGN.md, "the spine"). Read top
/// to bottom, this is the way of one request. Stages that other parts provide are wired here,
/// at their numbered position, and nowhere else.
/// </summary>
public static class RequestPipeline
{
    /// <param name="secured">False only in tests of the bare API: stages 2, 3 and 9 are then absent.</param>
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
        if (secured)
        {
            // 2 Identity: IP block list, API key (or metrics token) → Caller with scopes; 401/403 here; audit record at the end.
            app.UseBulwarkSecurity();
            app.UseMiddleware<CallerMiddleware>();
        }
        // 3 Policy (model ACL, requests/tokens per minute, concurrency, budgets) runs inside the endpoints
        //   once the model and token need are known: IRequestPolicy = KeyPolicy (BulwarkServer registers it).
        // 5 Input guard — provided by guardrails; wire it here (it runs on the parsed request).
        app.UseMiddleware<Bulwark.Server.Guardrails.Input.InputGuardMiddleware>();
        // 4 Contract, 6 Prompt, 7 Admission, 8 Backend run inside the endpoints, in that order:
        //   parser (validate) → chat template/tokens → AdmissionGate → IGenerationBackend.
        // 9 Output guard: stop strings, then IOutputGuard (SecretRedactionGuard, HtmlEscapingGuard when opted in) on every choice's text, and the JSON response_format check, in CompletionRun.
        ApiRoutes.Map(app);
        if (secured) app.MapBulwarkAdmin();
        if (secured) app.MapModelAdmin();
    }
}
