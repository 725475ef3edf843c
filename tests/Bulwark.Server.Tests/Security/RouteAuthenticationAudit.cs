using System.Net;
using Bulwark.Server.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Bulwark.Server.Tests.Security;

/// <summary>
/// Walks every endpoint an application maps (its <see cref="EndpointDataSource"/>s) and sends each
/// one a request without credentials and one with a key that lacks the route's scope. Written
/// against any <see cref="WebApplication"/> so it can be pointed at the full server later.
/// </summary>
internal static class RouteAuthenticationAudit
{
    /// <param name="SessionRoute">The route checks a console session instead of a key (<see cref="SessionRouteAttribute"/>): ConsoleSessionTests probes those.</param>
    public sealed record Probe(string Method, string Path, string Scope, bool SessionRoute = false);

    public static IReadOnlyList<Probe> Enumerate(IServiceProvider services)
    {
        var probes = new List<Probe>();
        foreach (var source in services.GetServices<EndpointDataSource>())
            foreach (var endpoint in source.Endpoints.OfType<RouteEndpoint>())
            {
                var path = "/" + string.Join("/", endpoint.RoutePattern.PathSegments.Select(segment =>
                    string.Concat(segment.Parts.Select(part => part switch
                    {
                        Microsoft.AspNetCore.Routing.Patterns.RoutePatternLiteralPart literal => literal.Content,
                        _ => "probe1",
                    }))));
                var scope = endpoint.Metadata.GetMetadata<RequireScopeAttribute>()?.Scope ?? Scopes.Inference;
                var methods = endpoint.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? ["GET"];
                var session = endpoint.Metadata.GetMetadata<SessionRouteAttribute>() is not null;
                probes.AddRange(methods.Select(method => new Probe(method, path, scope, session)));
            }
        return probes;
    }

    /// <summary>Status codes per probe: (without credentials, with a key lacking the scope).</summary>
    public static async Task<List<(Probe Probe, HttpStatusCode Anonymous, HttpStatusCode WrongScope)>> RunAsync(
        Uri address, IReadOnlyList<Probe> probes, string apiKey, string adminKey)
    {
        using var client = new HttpClient { BaseAddress = address };
        var results = new List<(Probe, HttpStatusCode, HttpStatusCode)>();
        foreach (var probe in probes)
        {
            var anonymous = await SendAsync(client, probe, null);
            var wrongKey = probe.Scope == Scopes.Inference ? adminKey : apiKey;
            var wrongScope = await SendAsync(client, probe, wrongKey);
            results.Add((probe, anonymous, wrongScope));
        }
        return results;
    }

    private static async Task<HttpStatusCode> SendAsync(HttpClient client, Probe probe, string? key)
    {
        using var request = new HttpRequestMessage(new HttpMethod(probe.Method), probe.Path);
        if (probe.Method is "POST" or "PUT" or "PATCH")
            request.Content = new StringContent("{}", System.Text.Encoding.UTF8, "application/json");
        if (key is not null) request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + key);
        using var response = await client.SendAsync(request);
        return response.StatusCode;
    }
}
