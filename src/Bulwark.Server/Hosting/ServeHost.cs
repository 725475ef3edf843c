using Bulwark.Server.Audit;
using Bulwark.Server.Backends;
using Bulwark.Server.Backends.Upstream;
using Bulwark.Server.Models;
using Bulwark.Server.Observability;
using Bulwark.Server.Registry;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Hosting;

/// <summary>
/// <c>bulwark serve</c> as one composition (the CLI only parses flags into configuration):
/// validate every setting, resolve and load the model, build the secured server, create the
/// first admin key on an empty key store, start Kestrel and report what runs where.
/// </summary>
public sealed class ServeHost : IAsyncDisposable
{
    /// <summary>How often a registered model's files are re-hashed even when no change notification came.</summary>
    public static TimeSpan ModelVerifyPeriod => ModelLifecycle.VerifyPeriod;

    private ServeHost(WebApplication app, IGenerationBackend? backend, ServedModels models, ModelSource? model, Uri address, IssuedKey? initialAdminKey,
        UpstreamPools? upstreams)
    {
        App = app;
        Backend = backend;
        Models = models;
        Model = model;
        Address = address;
        InitialAdminKey = initialAdminKey;
        Upstreams = upstreams;
    }

    public WebApplication App { get; }
    /// <summary>
    /// The embedded model loaded at start-up (the admin API may since have replaced or unloaded it: see
    /// <see cref="Models"/>); null for a gateway serving only upstream models.
    /// </summary>
    public IGenerationBackend? Backend { get; }

    /// <summary>The models served now; the host owns them and disposes them when it stops.</summary>
    public ServedModels Models { get; }

    public ModelLifecycle Lifecycle => App.Services.GetRequiredService<ModelLifecycle>();

    /// <summary>Where the embedded model came from; null without one.</summary>
    public ModelSource? Model { get; }

    /// <summary>The upstream pools (null when none is configured).</summary>
    public UpstreamPools? Upstreams { get; }
    public Uri Address { get; }

    /// <summary>The admin key made on first start (null when the store already had one); printed once, never stored in clear.</summary>
    public IssuedKey? InitialAdminKey { get; }

    /// <param name="load">Turns the resolved model into a backend; the embedded engine by default (tests pass a small one).</param>
    /// <exception cref="ServerConfigurationException">A setting is invalid or the model cannot be served; the message says which and why.</exception>
    /// <exception cref="DataDirectoryException">The data directory cannot be written (a full disk); the message names the path and the cause.</exception>
    public static async Task<ServeHost> StartAsync(WebApplicationBuilder builder, TextWriter output,
        Func<ModelSource, ServeOptions, IGenerationBackend>? load = null, CancellationToken ct = default)
    {
        // Every setting is checked before the (possibly slow) model load, so a typo fails at once.
        var settings = ServerSettings.Read(builder.Configuration);
        // Before anything holds a prompt or a key: a crash must not write them to a core file.
        if (!settings.Server.CoreDumps) CoreDumps.Disable();
        // Before the load starts threads that each want a malloc arena of their own (docs/reliability.md).
        NativeHeap.Apply(settings.Memory.MallocArenaMax);
        DataDirectory data;
        try { data = settings.Data.EnsureCreated(); }
        catch (Exception e) when (DataDirectoryException.IsDiskFailure(e)) { throw new DataDirectoryException(settings.Data.Root, e); }
        // With upstreams and no --model, Bulwark is a gateway: no embedded model (not even the demo).
        var embedded = settings.Upstreams.Count == 0 || !string.IsNullOrWhiteSpace(settings.Serve.Model);
        ModelSource? model = null;
        IGenerationBackend? backend = null;
        ServedModels models;
        load ??= (m, o) => m.LoadEmbedded(o, line => output.WriteLine(line));
        if (embedded)
        {
            if (!File.Exists(Path.Combine(data.ModelsPath, ModelSource.DemoFileName)) && string.IsNullOrWhiteSpace(settings.Serve.Model))
                output.WriteLine($"Creating the demo model in {data.ModelsPath} (once)...");
            try { model = await ModelSource.ResolveAsync(settings.Serve.Model, data, settings.Serve.RequireSignature, ct); }
            catch (Exception e) when (DataDirectoryException.IsDiskFailure(e) && string.IsNullOrWhiteSpace(settings.Serve.Model))
            {
                throw new DataDirectoryException(data.ModelsPath, e); // writing the demo model
            }
            if (!string.IsNullOrWhiteSpace(settings.Serve.Speculative.DraftModel))
            {
                // Resolved as --model is: a registered name is verified (and must be signed when signatures are required).
                ModelSource draft;
                try { draft = await ModelSource.ResolveAsync(settings.Serve.Speculative.DraftModel, data, settings.Serve.RequireSignature, ct); }
                catch (ServerConfigurationException e) { throw new ServerConfigurationException([.. e.Problems.Select(p => "draft model: " + p)]); }
                model = model with { Draft = draft };
            }
            var need = ModelMemory.OnDisk(model.Path) + settings.Serve.KvCacheMemoryBytes
                + (model.Draft is { } d ? ModelMemory.OnDisk(d.Path) + settings.Serve.Speculative.DraftKvCacheMemoryBytes : 0);
            if (settings.Serve.ModelMemoryBudgetBytes is { } budget && need > budget)
                throw new ServerConfigurationException([$"--model '{model.Id}' needs about {ModelLifecycle.Size(need)} (weights + KV cache {settings.Serve.KvCacheMemory}), " +
                    $"more than {ServeOptions.Section}:ModelMemoryBudget ({settings.Serve.ModelMemoryBudget})."]);
            backend = load(model, settings.Serve);
            models = new ServedModels(backend, new ServedModelInfo(model.Origin, model.RegisteredAs, need, DateTimeOffset.UtcNow));
        }
        else models = new ServedModels();
        WebApplication? app = null;
        UpstreamPools? upstreams = null;
        try
        {
            // Models loaded later through the admin API go through the same loader.
            builder.Services.AddSingleton<BackendLoader>((source, options) => load(source, options));
            app = BulwarkServer.Build(builder, models);
            if (settings.Upstreams.Count > 0)
            {
                output.WriteLine($"Checking {settings.Upstreams.Sum(p => p.Value.Endpoints.Count)} upstream endpoint(s)...");
                upstreams = await UpstreamPools.StartAsync(settings.Upstreams, models, app.Services.GetRequiredService<ServerMetrics>(),
                    app.Services.GetRequiredService<ILoggerFactory>(), app.Services.GetRequiredService<TimeProvider>(), ct);
            }
            var admin = await app.Services.GetRequiredService<KeyIssuer>().EnsureInitialAdminKeyAsync(ct);
            await app.StartAsync(ct);
            var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
            var host = new ServeHost(app, backend, models, model, address, admin, upstreams);
            if (model is not null)
            {
                app.Services.GetService<AuditWriter>()?.Enqueue(new AuditRecord { At = DateTimeOffset.UtcNow, Kind = "model.loaded", Model = model.Id, Detail = model.Origin });
                host.Lifecycle.Adopt(models.List()[0]);
            }
            StartupReport.Write(output, host, settings, builder.Configuration);
            return host;
        }
        catch
        {
            if (upstreams is not null) await upstreams.DisposeAsync();
            if (app is not null) await app.DisposeAsync();
            models.Dispose();
            throw;
        }
    }

    /// <summary>The watcher over the start-up model's files while it is loaded and registered (null for a plain path or the demo).</summary>
    public ModelFileWatcher? Watcher => Backend is null ? null : Lifecycle.WatcherOf(Backend.Model.Id);

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        if (Upstreams is not null) await Upstreams.DisposeAsync();
        await App.DisposeAsync();
        Models.Dispose();
    }
}
