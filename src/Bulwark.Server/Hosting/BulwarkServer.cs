using Bulwark.Server.Admission;
using Bulwark.Server.Api;
using Bulwark.Server.Guardrails.GuardModels;
using Bulwark.Server.Guardrails.Input;
using Bulwark.Server.Guardrails.Output;
using Bulwark.Server.Quotas;
using Bulwark.Server.Spine;
using Bulwark.Server.Backends;
using Bulwark.Server.Models;
using Bulwark.Server.Observability;
using Bulwark.Server.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Hosting;

/// <summary>
/// Composes the server: configuration (appsettings.json, <c>Bulwark__*</c> environment
/// variables, command-line flags — later sources win), validated options, Kestrel limits, the
/// services each stage needs, and the request pipeline from <see cref="RequestPipeline"/>.
/// </summary>
public static class BulwarkServer
{
    /// <summary>A builder with the standard ASP.NET Core sources plus <paramref name="overrides"/> (flags), which win.</summary>
    public static WebApplicationBuilder CreateBuilder(string[] args, IEnumerable<KeyValuePair<string, string?>>? overrides = null)
    {
        // Settings are read once at start-up (validated together; nothing re-reads them), so appsettings.json is
        // not watched: the watcher ASP.NET Core adds by default walks and inotify-watches the whole content root
        // recursively — every folder under the directory serve was started in — and wakes on every file change there.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [.. args, "--hostBuilder:reloadConfigOnChange=false"] });
        // Defaults below every other source: ASP.NET Core's per-request lines are noise on a console, so Warning unless configured.
        builder.Configuration.Sources.Insert(0, new Microsoft.Extensions.Configuration.Memory.MemoryConfigurationSource
        {
            InitialData = [new("Logging:LogLevel:Default", "Information"), new("Logging:LogLevel:Microsoft.AspNetCore", "Warning")],
        });
        if (overrides is not null) builder.Configuration.AddInMemoryCollection(overrides);
        return builder;
    }

    /// <summary>Validates the configuration and builds the app serving <paramref name="backend"/>.</summary>
    /// <param name="secured">
    /// The security front (keys, quotas, audit, admin API, secret redaction). Always on for
    /// <c>bulwark serve</c>; false only for tests that exercise the bare API.
    /// </param>
    /// <exception cref="ServerConfigurationException">A setting is malformed or out of range; the message lists every problem.</exception>
    public static WebApplication Build(WebApplicationBuilder builder, IGenerationBackend backend, bool secured = true) =>
        Build(builder, new ServedModels(backend), secured);

    /// <summary>Validates the configuration and builds the app serving <paramref name="models"/> (which the caller owns and disposes).</summary>
    /// <exception cref="ServerConfigurationException">A setting is malformed or out of range; the message lists every problem.</exception>
    public static WebApplication Build(WebApplicationBuilder builder, ServedModels models, bool secured = true)
    {
        var settings = ServerSettings.Read(builder.Configuration);
        var (server, limits, admission) = (settings.Server, settings.Limits, settings.Admission);

        var scheme = "http";
        if (secured)
        {
            // TLS and mTLS from Bulwark:Tls (certificate files, client CA); checked now so a bad path stops start-up.
            try { scheme = KestrelTls.Scheme(builder.UseBulwarkTls()); }
            catch (Exception e) when (e is InvalidOperationException or IOException or System.Security.Cryptography.CryptographicException)
            {
                throw new ServerConfigurationException([e.Message]);
            }
        }
        builder.WebHost.UseUrls(server.UrlFor(scheme));
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = limits.MaxRequestBodyBytes;
            kestrel.Limits.RequestHeadersTimeout = server.RequestHeadersTimeout;
            kestrel.Limits.MinRequestBodyDataRate = new MinDataRate(server.MinRequestBodyBytesPerSecond, server.MinRequestBodyGracePeriod);
            kestrel.Limits.KeepAliveTimeout = server.KeepAliveTimeout;
            kestrel.Limits.MaxConcurrentConnections = server.MaxConcurrentConnections;
            kestrel.Limits.MaxRequestHeadersTotalSize = server.MaxRequestHeadersBytes;
        });
        // Kestrel waits for in-flight requests until this passes; the drain cancels them a little earlier so each gets a clear error.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = server.DrainTimeout + TimeSpan.FromSeconds(5));

        var services = builder.Services;
        // Kestrel's buffers are cleared when they go back to its pool (issue 25: no request data left behind).
        services.AddSingleton<ClearingMemoryPoolFactory>();
        services.AddSingleton<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>>(sp => sp.GetRequiredService<ClearingMemoryPoolFactory>());
        services.AddBulwarkTracing(settings.Tracing, builder.Configuration);
        if (settings.LogFormat == "json") builder.Logging.AddBulwarkJsonConsole();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(models);
        services.AddSingleton(server);
        services.AddSingleton(limits);
        services.AddSingleton(admission);
        services.AddSingleton(sp => new AdmissionQueue(admission, sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton(sp =>
        {
            var queue = sp.GetRequiredService<AdmissionQueue>();
            return new ServerMetrics(() => models.Statistics, () => (queue.Running, queue.Waiting));
        });
        services.AddSingleton(sp => new PrometheusExposition(sp.GetRequiredService<ServerMetrics>().Meter));
        services.AddSingleton<AdmissionGate>();
        services.AddSingleton(settings.Degradation);
        services.AddHostedService(sp => new Gen2Collector(settings.Memory, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<Gen2Collector>>()));
        services.TryAddSingleton<ReplicaIsolation>();
        services.AddSingleton<ServiceLevel>().AddHostedService(sp => sp.GetRequiredService<ServiceLevel>());
        services.AddSingleton(sp => new ShutdownDrain(sp.GetRequiredService<AdmissionQueue>(), server.DrainTimeout, sp.GetRequiredService<TimeProvider>()));
        // Read now, so a malformed guard setting stops start-up rather than the first request.
        var inputGuard = InputGuardOptions.Read(builder.Configuration);
        var guardModel = GuardModelOptions.Read(builder.Configuration);
        var outputModeration = OutputModerationOptions.Read(builder.Configuration, guardModel);
        services.AddSingleton(sp => new GuardModelMetrics(sp.GetRequiredService<ServerMetrics>().Meter));
        services.AddSingleton(sp => new InputGuard(inputGuard, sp.GetRequiredService<ServerMetrics>(), guardModel.Enabled && guardModel.Mode.Kind != "off"
            ? new GuardModelStage(guardModel, models, sp.GetRequiredService<GuardModelMetrics>(), sp.GetRequiredService<TimeProvider>())
            : null));
        services.AddSingleton(sp => new GenerationSpine(models, sp.GetRequiredService<InputGuard>(), sp.GetRequiredService<AdmissionGate>(),
            sp.GetRequiredService<IOutputGuard>(), sp.GetRequiredService<ServerMetrics>(), sp.GetRequiredService<ShutdownDrain>(),
            sp.GetRequiredService<ServiceLevel>(), sp.GetRequiredService<TimeProvider>(), limits.MaxTokens, limits.Deadline, secured ? sp.GetRequiredService<QuotaGate>() : null,
            outputModeration.Enabled
                ? new OutputModeration(outputModeration, new GuardModelStage(outputModeration.Checks, models, sp.GetRequiredService<GuardModelMetrics>(), sp.GetRequiredService<TimeProvider>()))
                : null));
        services.AddSingleton<ReadinessProbe>();
        // The endpoint types the routes resolve, one instance each.
        services.AddSingleton<CompletionEndpoint>().AddSingleton<TgiGenerateEndpoint>().AddSingleton<ModelsEndpoint>().AddSingleton<TokenizeEndpoint>().AddSingleton<EmbeddingsEndpoint>();
        if (secured)
        {
            var data = settings.Data.EnsureCreated();
            services.AddBulwarkSecurity(builder.Configuration, data);
            // Hot load/unload of registered models (admin API); the loader is the embedded engine unless the host gave another.
            services.TryAddSingleton<BackendLoader>(sp =>
            {
                var log = sp.GetRequiredService<ILoggerFactory>().CreateLogger("Bulwark.Models");
                return (source, options) => source.LoadEmbedded(options, line => log.LogInformation("{Line}", line));
            });
            services.AddSingleton(sp => new ModelLifecycle(models, Registry.ModelRegistry.Open(data), sp.GetRequiredService<BackendLoader>(), settings.Serve,
                sp.GetRequiredService<ServerMetrics>(), sp.GetService<Audit.AuditWriter>(), sp.GetRequiredService<ILoggerFactory>().CreateLogger("Bulwark.Models"),
                sp.GetRequiredService<TimeProvider>(),
                // A switch made here is announced on the incident log; the other replicas' followers load the same version.
                (name, version, ct) => sp.GetRequiredService<Storage.SecurityStorage>().Incidents.AppendAsync(Storage.IncidentKinds.ModelServing,
                    System.Text.Json.JsonSerializer.Serialize(new ServingChange(name, version, sp.GetRequiredService<Incidents.ReplicaIdentity>().Id)), ct)));
            services.AddSingleton<ModelServingFollower>().AddHostedService(sp => sp.GetRequiredService<ModelServingFollower>());
            services.AddSingleton<Incidents.IIncidentHandler>(sp => sp.GetRequiredService<ModelServingFollower>());
            services.AddSingleton<IOutputGuard>(Guardrails.Output.HtmlEscapingGuard.Wrap(
                settings.RedactSecrets ? new SecretRedactionGuard(Guardrails.Output.OutputGuardModes.Read(builder.Configuration)) : NoOutputGuard.Instance,
                Guardrails.Output.HtmlEscapeOptions.Read(builder.Configuration)));
            // The operator console: on loopback unless told otherwise (it takes admin keys through a browser form).
            if (settings.Console.ServedWhen(server.IsLoopbackOnly))
            {
                // Tests may give the sessions and the throttle their own clock.
                services.AddSingleton(settings.Console);
                services.TryAddSingleton<OperatorConsole.ConsoleSessions>();
                services.TryAddSingleton<OperatorConsole.SignInThrottle>();
            }
            // After every provider the host or the caller added: each log line passes the secret redactor.
            builder.Logging.AddBulwarkRedaction();
        }
        else
        {
            services.AddSingleton<IOutputGuard>(Guardrails.Output.HtmlEscapingGuard.Wrap(NoOutputGuard.Instance, Guardrails.Output.HtmlEscapeOptions.Read(builder.Configuration)));
        }

        var app = builder.Build();
        // The exposition listens from its creation on: create it now, not at the first scrape,
        // or everything counted before that scrape is lost.
        app.Services.GetRequiredService<PrometheusExposition>();
        var drain = app.Services.GetRequiredService<ShutdownDrain>();
        // ApplicationStopping fires before Kestrel stops accepting, so no request slips in between.
        app.Lifetime.ApplicationStopping.Register(drain.BeginDrain);
        RequestPipeline.Use(app, secured);
        return app;
    }
}
