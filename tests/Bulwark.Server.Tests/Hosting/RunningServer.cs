using System.ClientModel;
using Bulwark.Server.Backends;
using Bulwark.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenAI;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>A real Kestrel server on 127.0.0.1 with a free port, serving a given backend.</summary>
public sealed class RunningServer : IAsyncDisposable
{
    private RunningServer(WebApplication app, Uri address)
    {
        App = app;
        Address = address;
        Http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(60) };
    }

    public WebApplication App { get; }
    public Uri Address { get; }
    public HttpClient Http { get; }

    public static async Task<RunningServer> StartAsync(IGenerationBackend backend, Dictionary<string, string?>? settings = null)
    {
        var overrides = new Dictionary<string, string?> { ["Bulwark:Server:Port"] = "0" };
        foreach (var (k, v) in settings ?? []) overrides[k] = v;
        var builder = BulwarkServer.CreateBuilder([], overrides);
        builder.Logging.ClearProviders();
        var app = BulwarkServer.Build(builder, backend);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new RunningServer(app, new Uri(address.TrimEnd('/') + "/"));
    }

    public OpenAIClient OpenAI() =>
        new(new ApiKeyCredential("not-checked-here"), new OpenAIClientOptions { Endpoint = new Uri(Address, "v1"), NetworkTimeout = TimeSpan.FromSeconds(60) });

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
