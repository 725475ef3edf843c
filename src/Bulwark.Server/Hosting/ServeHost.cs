using Bulwark.Server.Audit;
using Bulwark.Server.Backends;
using Bulwark.Server.Observability;
using Bulwark.Server.Registry;
using Bulwark.Server.Security;
using Microsoft.Extensions.Logging;
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
    /// <summary>How often a registered model's files are re-hashed even when no change notification came.</summary>
    public static readonly TimeSpan ModelVerifyPeriod = TimeSpan.FromMinutes(5);

    private ModelFileWatcher? _watcher;

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
            app.Services.GetService<AuditWriter>()?.Enqueue(new AuditRecord { At = DateTimeOffset.UtcNow, Kind = "model.loaded", Model = model.Id, Detail = model.Origin });
            if (model.RegisteredAs is { } registered)
                host._watcher = WatchModel(app, ModelRegistry.Open(data), registered.Name, registered.Version, settings.Serve.RequireSignature);
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

    /// <summary>The watcher over the served registered model's files (null for a plain path or the demo).</summary>
    public ModelFileWatcher? Watcher => _watcher;

    /// <summary>
    /// Re-verifies the served version's files on change and every <see cref="ModelVerifyPeriod"/>.
    /// A mismatch is counted, audited and logged; the copy already loaded keeps serving, and any
    /// later load of these files goes through verification again and is refused.
    /// </summary>
    private static ModelFileWatcher WatchModel(WebApplication app, ModelRegistry registry, string name, string version, bool requireSignature)
    {
        var watcher = new ModelFileWatcher(registry, name, version, requireSignature, ModelVerifyPeriod, TimeProvider.System);
        var metrics = app.Services.GetRequiredService<ServerMetrics>();
        var audit = app.Services.GetService<AuditWriter>();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Bulwark.Models");
        watcher.TamperDetected += report =>
        {
            metrics.ModelTamperAlerts.Add(1, new KeyValuePair<string, object?>("model", name));
            audit?.Enqueue(new AuditRecord
            {
                At = DateTimeOffset.UtcNow,
                Kind = "model.tampered",
                Model = $"{name}:{version}",
                Detail = string.Join("; ", report.Problems),
            });
            logger.LogError("Model {Model} version {Version}: files no longer match the manifest ({Problems}); serving the copy loaded at start-up, and the files will not load again until fixed",
                name, version, string.Join("; ", report.Problems));
        };
        return watcher;
    }

    public async ValueTask DisposeAsync()
    {
        if (_watcher is not null) await _watcher.DisposeAsync();
        await App.StopAsync();
        await App.DisposeAsync();
        (Backend as IDisposable)?.Dispose();
    }
}
