using System.Text.Json.Serialization;
using Bulwark.Server.Api;
using Bulwark.Server.Audit;
using Bulwark.Server.Backends;
using Bulwark.Server.Backends.Embedded;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Bulwark.Server.Admin;

/// <summary>Body of <c>POST /admin/prefix-cache/flush</c> (optional): <c>tenant</c>, or every tenant when absent.</summary>
public sealed record PrefixCacheFlushRequest([property: JsonPropertyName("tenant")] string? Tenant = null)
{
    public static PrefixCacheFlushRequest Read(JsonFields f) => new(f.String("tenant", AdminBody.MaxText));
}

/// <summary>
/// <c>POST /admin/prefix-cache/flush</c>: drops the KV blocks the embedded engines cached for one tenant's
/// prompts (or everyone's), so no later request reuses them, and clears their memory once no running
/// request holds them (docs/security.md, "What stays in memory"). For a tenant whose data must not outlive
/// an incident or a contract. This replica only; audited.
/// </summary>
public static class PrefixCacheAdminEndpoints
{
    public static RouteHandlerBuilder MapPrefixCacheAdmin(this IEndpointRouteBuilder endpoints) =>
        endpoints.MapPost("/admin/prefix-cache/flush", async (HttpContext context, ServedModels models, SecurityStorage storage, TimeProvider time) =>
        {
            var body = await AdminBody.ReadOptionalAsync(context, PrefixCacheFlushRequest.Read, new PrefixCacheFlushRequest());
            var tenant = body.Tenant?.Trim();
            if (tenant is { Length: 0 }) throw ApiException.Invalid("tenant", "tenant must not be empty; leave it out to flush every tenant's blocks.");
            var flushed = new List<object>();
            var total = 0;
            foreach (var model in models.List())
            {
                if (model.Backend is not EmbeddedBackend embedded) continue; // an upstream's cache is its own
                var blocks = await embedded.Engine.FlushPrefixCacheAsync(tenant);
                total += blocks;
                flushed.Add(new { model = model.Id, blocks });
            }
            var actor = AdminEndpoints.Actor(context);
            await storage.Audit.WriteAsync([new AuditRecord
            {
                At = time.GetUtcNow(), Kind = "prefix_cache.flushed",
                Detail = $"{(tenant is null ? "every tenant" : $"tenant {tenant}")}: {total} blocks, by {actor}",
            }], context.RequestAborted);
            return Results.Json(new { tenant, blocks = total, models = flushed });
        }).WithMetadata(new RequireScopeAttribute(Scopes.Admin));
}
