using Bulwark.Server.Backends;
using Bulwark.Server.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Bulwark.Server.Hosting;

/// <summary>
/// <c>bulwark serve</c> as one composition (the CLI only parses flags into configuration):
/// validate every setting, resolve and load the model, build the secured server, create the
/// first admin key on an empty key store, start Kestrel and report what runs where.
/// </summary>
public sealed class ServeHost : IAsyncDisposable
{
    private ServeHost(WebApplication app, IGenerationBackend backend, ModelSource model, Uri address, IssuedKey? initialAdminKey)
    {
        App = app;
        Backend = backend;
        Model = model;
        Address = address;
        InitialAdminKey = initialAdminKey;
    }

    public WebApplication App { get; }
    public IGenerationBackend Backend { get; }
    public ModelSource Model { get; }
    public Uri Address { get; }

    /// <summary>The admin key made on first start (null when the store already had one); printed once, never stored in clear.</summary>
    public IssuedKey? InitialAdminKey { get; }

    /// <param name="load">Turns the resolved model into a backend; the embedded engine by default (tests pass a small one).</param>
    /// <exception cref="ServerConfigurationException">A setting is invalid or the model cannot be served; the message says which and why.</exception>
    public static async Task<ServeHost> StartAsync(WebApplicationBuilder builder, TextWriter output,
        Func<ModelSource, ServeOptions, IGenerationBackend>? load = null, CancellationToken ct = default)
    {
        // Every setting is checked before the (possibly slow) model load, so a typo fails at once.
        var settings = ServerSettings.Read(builder.Configuration);
        var data = settings.Data.EnsureCreated();
        if (!File.Exists(Path.Combine(data.ModelsPath, ModelSource.DemoFileName)) && string.IsNullOrWhiteSpace(settings.Serve.Model))
            output.WriteLine($"Creating the demo model in {data.ModelsPath} (once)...");
        var model = await ModelSource.ResolveAsync(settings.Serve.Model, data, settings.Serve.RequireSignature, ct);
        load ??= (m, o) => EmbeddedModelLoader.Load(m, o);
        var backend = load(model, settings.Serve);
        WebApplication? app = null;
        try
        {
            app = BulwarkServer.Build(builder, backend);
            var admin = await app.Services.GetRequiredService<KeyIssuer>().EnsureInitialAdminKeyAsync(ct);
            await app.StartAsync(ct);
            var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
            var host = new ServeHost(app, backend, model, address, admin);
            StartupReport.Write(output, host, settings, builder.Configuration);
            return host;
        }
        catch
        {
            if (app is not null) await app.DisposeAsync();
            (backend as IDisposable)?.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        (Backend as IDisposable)?.Dispose();
    }
}
