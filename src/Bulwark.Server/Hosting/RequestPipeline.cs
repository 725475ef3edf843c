using Bulwark.Server.Api;
using Bulwark.Server.Observability;
using Microsoft.AspNetCore.Builder;

namespace Bulwark.Server.Hosting;

/// <summary>
/// THE place where the stages of a request are put in order (DESIGN.md, "the spine"). Read top
/// to bottom, this is the way of one request. Stages that other parts provide are wired here,
/// at their numbered position, and nowhere else.
/// </summary>
public static class RequestPipeline
{
    public static void Use(WebApplication app)
    {
        // 10 Meter (HTTP part): outermost, so it sees the final status of every request, refusals included.
        app.UseMiddleware<RequestMetricsMiddleware>();
        // 1 Edge: every failure answered in OpenAI's shape; a request id on every response. Body size,
        //   header and body-rate limits are Kestrel's, set in BulwarkServer from ServerOptions/ApiLimits.
        app.UseMiddleware<ApiErrorMiddleware>();
        app.UseMiddleware<RequestIdMiddleware>();
        app.UseRouting();
        // 2 Identity (API key / JWT → RequestCaller) — provided by the security stage; wire it here.
        // 3 Policy (model ACL, requests/tokens per minute, budgets) — provided by the security stage; wire it here.
        // 5 Input guard — provided by guardrails; wire it here (it runs on the parsed request).
        app.UseMiddleware<Bulwark.Server.Guardrails.Input.InputGuardMiddleware>();
        // 4 Contract, 6 Prompt, 7 Admission, 8 Backend run inside the endpoints, in that order:
        //   parser (validate) → chat template/tokens → AdmissionGate → IGenerationBackend.
        // 9 Output guard (stop strings are applied in CompletionRun; redaction from guardrails wires here).
        ApiRoutes.Map(app);
    }
}
