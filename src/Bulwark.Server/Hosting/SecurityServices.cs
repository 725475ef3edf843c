using Bulwark.Server.Admission;
using Bulwark.Server.Audit;
using Bulwark.Server.Incidents;
using Bulwark.Server.Observability;
using Bulwark.Server.Quotas;
using Bulwark.Server.Redaction;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Bulwark.Server.Hosting;

/// <summary>Wiring of the security front: <c>AddBulwarkSecurity</c>, <c>UseBulwarkSecurity</c>, <c>AddBulwarkRedaction</c>.</summary>
public static class SecurityServices
{
    /// <summary>
    /// Registers keys, quotas, storage, audit and incident controls, configured from the
    /// <c>Bulwark:Security</c>, <c>Bulwark:Storage</c>, <c>Bulwark:Quotas</c> and <c>Bulwark:Audit</c> sections.
    /// </summary>
    public static IServiceCollection AddBulwarkSecurity(this IServiceCollection services, IConfiguration configuration, DataDirectory dataDirectory)
    {
        var security = configuration.GetSection("Bulwark:Security").Get<SecurityOptions>() ?? new SecurityOptions();
        var storage = configuration.GetSection("Bulwark:Storage").Get<StorageOptions>() ?? new StorageOptions();
        var quotas = Read<QuotaOptions>(configuration, "Bulwark:Quotas");
        var audit = Read<AuditOptions>(configuration, "Bulwark:Audit");
        if (audit.Validate() is { Count: > 0 } problems) throw new ServerConfigurationException(problems);
        if (quotas.Validate() is { Count: > 0 } quotaProblems) throw new ServerConfigurationException(quotaProblems);
        RegisterSecrets(security, storage, quotas);

        services.AddSingleton(security).AddSingleton(storage).AddSingleton(quotas).AddSingleton(audit).AddSingleton(dataDirectory);
        services.TryAddTimeProvider();
        // The server registers its metrics first (BulwarkServer); a host of the security front alone gets its own.
        if (services.All(d => d.ServiceType != typeof(ServerMetrics))) services.AddSingleton(_ => new ServerMetrics(() => default, () => (0, 0)));
        services.AddSingleton(_ => SecurityStorage.OpenAsync(dataDirectory, storage).GetAwaiter().GetResult());
        services.AddSingleton(_ =>
        {
            byte[] secret;
            try { secret = ServerSecret.Load(security.HmacSecret, dataDirectory.StatePath); }
            catch (Exception e) when (DataDirectoryException.IsDiskFailure(e)) { throw new DataDirectoryException(dataDirectory.StatePath, e); }
            SecretRedactor.AddKnownSecret(Convert.ToBase64String(secret));
            try { return new ApiKeyHasher(secret); }
            finally { System.Security.Cryptography.CryptographicOperations.ZeroMemory(secret); } // the hasher holds the only copy, pinned
        });
        services.AddSingleton(sp => new KeyCache(sp.GetRequiredService<SecurityStorage>().Keys, sp.GetRequiredService<TimeProvider>(), security.KeyCacheLifetime));
        services.AddSingleton(sp => new ApiKeyAuthenticator(sp.GetRequiredService<KeyCache>(), sp.GetRequiredService<ApiKeyHasher>(),
            sp.GetRequiredService<TimeProvider>(), security.MetricsToken));
        services.AddSingleton<IpBlockList>().AddSingleton<ActiveRequests>().AddSingleton<ReplicaIdentity>();
        services.TryAddSingleton<ReplicaIsolation>();
        services.AddSingleton<KeyIssuer>().AddSingleton<IncidentControls>().AddSingleton<QuotaGate>().AddSingleton<OpenLeases>();
        services.AddHostedService<QuotaLeaseRenewer>();

        var logLevel = new RuntimeLogLevel();
        services.AddSingleton(logLevel);
        services.AddSingleton<IPostConfigureOptions<LoggerFilterOptions>>(logLevel);
        services.AddSingleton<IOptionsChangeTokenSource<LoggerFilterOptions>>(logLevel);

        services.AddSingleton<AuditWriter>().AddHostedService(sp => sp.GetRequiredService<AuditWriter>());
        services.AddSingleton<IncidentFeed>().AddHostedService(sp => sp.GetRequiredService<IncidentFeed>());
        services.AddSingleton<ActiveRequestPublisher>().AddHostedService(sp => sp.GetRequiredService<ActiveRequestPublisher>());

        if (string.IsNullOrWhiteSpace(quotas.Redis))
        {
            services.AddSingleton<IQuotaStore>(sp => new InMemoryQuotaStore(sp.GetRequiredService<TimeProvider>()));
        }
        else
        {
            services.AddSingleton<IConnectionMultiplexer>(_ => RedisQuotaStore.Connect(quotas.Redis));
            services.AddSingleton<IQuotaStore>(sp => new ResilientQuotaStore(
                new RedisQuotaStore(sp.GetRequiredService<IConnectionMultiplexer>(), quotas.RedisPrefix, quotas.LeaseLifetime), quotas.WhenRedisDown,
                () => sp.GetRequiredService<ActiveRequestPublisher>().LiveReplicas, sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<ILogger<ResilientQuotaStore>>(), sp.GetRequiredService<ServerMetrics>()));
        }
        return services;
    }

    /// <summary>
    /// Adds the identity stage and the list of active requests; call after routing (WebApplication adds
    /// routing first by itself) and after <see cref="UseBulwarkAudit"/>.
    /// </summary>
    public static IApplicationBuilder UseBulwarkSecurity(this IApplicationBuilder app) =>
        app.UseMiddleware<SecurityMiddleware>().UseMiddleware<ActiveRequestsMiddleware>();

    /// <summary>Adds the audit record of every request the identity stage sees; call before <see cref="UseBulwarkSecurity"/>, outside the error handler so it sees final statuses.</summary>
    public static IApplicationBuilder UseBulwarkAudit(this IApplicationBuilder app) => app.UseMiddleware<AuditMiddleware>();

    /// <summary>
    /// Wraps every logger provider registered so far in <see cref="RedactingLoggerProvider"/>;
    /// call after the last provider is added.
    /// </summary>
    public static ILoggingBuilder AddBulwarkRedaction(this ILoggingBuilder logging)
    {
        var services = logging.Services;
        for (var i = 0; i < services.Count; i++)
        {
            var d = services[i];
            if (d.ServiceType != typeof(ILoggerProvider) || d.IsKeyedService) continue;
            Func<IServiceProvider, ILoggerProvider> create = d switch
            {
                { ImplementationInstance: ILoggerProvider instance } => _ => instance,
                { ImplementationFactory: { } factory } => sp => (ILoggerProvider)factory(sp),
                _ => sp => (ILoggerProvider)ActivatorUtilities.CreateInstance(sp, d.ImplementationType!),
            };
            services[i] = ServiceDescriptor.Singleton<ILoggerProvider>(sp => new RedactingLoggerProvider(create(sp)));
        }
        return logging;
    }

    /// <summary>Binds a section, turning a value the binder cannot read (an unknown <c>WhenRedisDown</c>) into the configuration error.</summary>
    private static T Read<T>(IConfiguration configuration, string section) where T : new()
    {
        try { return configuration.GetSection(section).Get<T>() ?? new T(); }
        catch (InvalidOperationException e) { throw new ServerConfigurationException([e.Message]); }
    }

    /// <summary>Registers <see cref="TimeProvider.System"/> unless a clock is already registered (tests inject their own).</summary>
    public static IServiceCollection TryAddTimeProvider(this IServiceCollection services)
    {
        if (services.All(d => d.ServiceType != typeof(TimeProvider))) services.AddSingleton(TimeProvider.System);
        return services;
    }

    private static void RegisterSecrets(SecurityOptions security, StorageOptions storage, QuotaOptions quotas)
    {
        if (!string.IsNullOrWhiteSpace(quotas.Redis))
            SecretRedactor.AddKnownSecret(ConfigurationOptions.Parse(quotas.Redis).Password);
        SecretRedactor.AddKnownSecret(security.HmacSecret);
        SecretRedactor.AddKnownSecret(security.MetricsToken);
        if (!string.IsNullOrWhiteSpace(storage.Postgres))
            SecretRedactor.AddKnownSecret(new Npgsql.NpgsqlConnectionStringBuilder(storage.Postgres).Password);
    }
}
