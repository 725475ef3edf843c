using System.ClientModel;
using System.Net.Http.Headers;
using Bulwark.Server.Backends;
using Bulwark.Server.Hosting;
using Bulwark.Server.Security;
using Bulwark.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenAI;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>
/// A real Kestrel server on 127.0.0.1 with a free port, serving a given backend through the full
/// composition of <see cref="BulwarkServer"/>: security front on, its own data directory, and an
/// ordinary API key that <see cref="Http"/> and <see cref="OpenAI"/> send. <c>secured: false</c>
/// runs the bare API for the few tests that need it.
/// </summary>
public sealed class RunningServer : IAsyncDisposable
{
    private RunningServer(WebApplication app, Uri address, string? apiKey)
    {
        App = app;
        Address = address;
        ApiKey = apiKey;
        Http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(60) };
        if (apiKey is not null) Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    public WebApplication App { get; }
    public Uri Address { get; }
    public HttpClient Http { get; }

    /// <summary>An ordinary inference key (null without the security front).</summary>
    public string? ApiKey { get; }

    public static async Task<RunningServer> StartAsync(IGenerationBackend backend, Dictionary<string, string?>? settings = null, bool secured = true)
    {
        var overrides = new Dictionary<string, string?>
        {
            ["Bulwark:Server:Port"] = "0",
            [ServerSettings.DataDirKey] = Fixtures.NewTempDirectory("server"),
        };
        foreach (var (k, v) in settings ?? []) overrides[k] = v;
        var builder = BulwarkServer.CreateBuilder([], overrides);
        builder.Logging.ClearProviders();
        var app = BulwarkServer.Build(builder, backend, secured);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        string? key = null;
        if (secured) key = (await app.Services.GetRequiredService<KeyIssuer>().CreateAsync(new KeySpec { Name = "tests" }, "tests")).Key;
        return new RunningServer(app, new Uri(address.TrimEnd('/') + "/"), key);
    }

    public T Get<T>() where T : notnull => App.Services.GetRequiredService<T>();

    public OpenAIClient OpenAI(string? key = null) =>
        new(new ApiKeyCredential(key ?? ApiKey ?? "no-key-needed"), new OpenAIClientOptions { Endpoint = new Uri(Address, "v1"), NetworkTimeout = TimeSpan.FromSeconds(60) });

    /// <summary>A client that sends <paramref name="key"/> (none when null).</summary>
    public HttpClient Client(string? key)
    {
        var client = new HttpClient { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(60) };
        if (key is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
