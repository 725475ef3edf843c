using System.Text.Json.Serialization;
using Bulwark.Server.Api;
using Bulwark.Server.Backends;
using Bulwark.Server.Models;
using Bulwark.Server.Registry;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Bulwark.Server.Admin;

/// <summary>Body of the model admin routes that take a version.</summary>
public sealed record ModelVersionRequest([property: JsonPropertyName("version")] string? Version = null);

/// <summary>
/// The models admin API (admin keys only, like every <c>/admin</c> route): list registered models
/// and what is loaded; load, unload, switch the serving version and roll back in a running server.
/// The work and its audit records are <see cref="ModelLifecycle"/>'s; errors use the OpenAI shape.
/// </summary>
public static class ModelAdminEndpoints
{
    public static RouteGroupBuilder MapModelAdmin(this IEndpointRouteBuilder endpoints, string prefix = "/admin/models")
    {
        var admin = endpoints.MapGroup(prefix).WithMetadata(new RequireScopeAttribute(Scopes.Admin));

        admin.MapGet("", (ModelLifecycle lifecycle) => Results.Json(ModelListing.Of(lifecycle)));
        admin.MapPost("/{name}/load", async (string name, HttpContext context, ModelLifecycle lifecycle) =>
        {
            var body = await ReadAsync(context);
            var model = await lifecycle.LoadAsync(name, body.Version, KeyId(context), context.RequestAborted);
            return Results.Json(new { loaded = Loaded(model, lifecycle) }, statusCode: StatusCodes.Status201Created);
        });
        admin.MapPost("/{name}/unload", async (string name, HttpContext context, ModelLifecycle lifecycle) =>
        {
            var removed = await lifecycle.UnloadAsync(name, KeyId(context), context.RequestAborted);
            return Results.Json(new { unloaded = Loaded(removed, lifecycle) });
        });
        admin.MapPost("/{name}/use", async (string name, HttpContext context, ModelLifecycle lifecycle) =>
        {
            var body = await ReadAsync(context);
            if (string.IsNullOrWhiteSpace(body.Version))
                throw ApiException.Invalid("version", "version is required (v1, v2, ...; see GET /admin/models).", "missing_required_parameter");
            var (serving, replaced) = await lifecycle.UseAsync(name, body.Version, KeyId(context), context.RequestAborted);
            return Results.Json(new { serving = Loaded(serving, lifecycle), replaced = replaced is null ? null : Loaded(replaced, lifecycle) });
        });
        admin.MapPost("/{name}/rollback", async (string name, HttpContext context, ModelLifecycle lifecycle) =>
        {
            var (serving, replaced) = await lifecycle.RollbackAsync(name, KeyId(context), context.RequestAborted);
            return Results.Json(new { serving = Loaded(serving, lifecycle), replaced = replaced is null ? null : Loaded(replaced, lifecycle) });
        });
        return admin;
    }

    private static LoadedModelView Loaded(ServedModel m, ModelLifecycle lifecycle) => LoadedModelView.Of(m, lifecycle);

    private static Task<ModelVersionRequest> ReadAsync(HttpContext context) =>
        AdminBody.ReadOptionalAsync(context, f => new ModelVersionRequest(f.String("version", 16)), new ModelVersionRequest());

    private static string KeyId(HttpContext context) => context.GetCaller()?.KeyId ?? "?";
}
