using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Bulwark.Server.Api;

/// <summary>Every route the server answers, in one list.</summary>
public static class ApiRoutes
{
    public static void Map(IEndpointRouteBuilder routes)
    {
        routes.MapPost("/v1/chat/completions", (HttpContext c, CompletionEndpoint e) => e.HandleAsync(c, ResponseKind.Chat));
        routes.MapPost("/v1/completions", (HttpContext c, CompletionEndpoint e) => e.HandleAsync(c, ResponseKind.Text));
        routes.MapPost("/v1/embeddings", (HttpContext c, EmbeddingsEndpoint e) => e.HandleAsync(c));
        routes.MapGet("/v1/models", (HttpContext c, ModelsEndpoint e) => e.ListAsync(c));
        routes.MapGet("/v1/models/{id}", (HttpContext c, string id, ModelsEndpoint e) => e.GetAsync(c, id));
        routes.MapPost("/tokenize", (HttpContext c, TokenizeEndpoint e) => e.TokenizeAsync(c));
        routes.MapPost("/detokenize", (HttpContext c, TokenizeEndpoint e) => e.DetokenizeAsync(c));
        routes.MapPost("/generate", (HttpContext c, TgiGenerateEndpoint e) => e.HandleAsync(c, stream: false));
        routes.MapPost("/generate_stream", (HttpContext c, TgiGenerateEndpoint e) => e.HandleAsync(c, stream: true));

        routes.MapGet("/health", () => Results.Text("ok\n", "text/plain"));
        routes.MapGet("/ready", async (HttpContext c, ReadinessProbe probe) =>
        {
            var (ready, detail) = await probe.CheckAsync(c.RequestAborted);
            return Results.Text(detail + "\n", "text/plain", statusCode: ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
        });
        // Metrics have their own credential (the metrics token or an admin key), not an inference key.
        routes.MapGet("/metrics", (PrometheusExposition exposition) =>
            Results.Text(exposition.Render(), "text/plain; version=0.0.4; charset=utf-8")).WithMetadata(new RequireScopeAttribute(Scopes.Metrics));

        routes.MapFallback((HttpContext c) => throw new ApiException(StatusCodes.Status404NotFound,
            $"There is no route {c.Request.Method} {Truncate(c.Request.Path.Value ?? "")}. See GET /v1/models, POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings.",
            "invalid_request_error", null, "unknown_url"));
    }

    private static string Truncate(string s) => s.Length <= 128 ? s : s[..128] + "...";
}
