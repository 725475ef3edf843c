using Bulwark.Server.Admission;
using Bulwark.Server.Api;
using Bulwark.Server.Backends.Upstream;
using Bulwark.Server.Models;
using Bulwark.Server.Observability;
using Microsoft.Extensions.Configuration;

namespace Bulwark.Server.Hosting;

/// <summary>All of the server's options, read from configuration and validated together at start-up.</summary>
public sealed record ServerSettings(ServerOptions Server, ApiLimits Limits, AdmissionOptions Admission, ServeOptions Serve, DataDirectory Data, bool RedactSecrets,
    IReadOnlyDictionary<string, UpstreamPoolOptions> Upstreams)
{
    /// <summary>Degradation levels and their effects (<c>Bulwark:Degradation</c>).</summary>
    public DegradationOptions Degradation { get; init; } = new();

    /// <summary>glibc's malloc arenas and the server's own gen2 collections (<c>Bulwark:Memory</c>).</summary>
    public MemoryOptions Memory { get; init; } = new();

    /// <summary>OpenTelemetry tracing (<c>Bulwark:Tracing</c> and the standard <c>OTEL_*</c> settings); off unless configured.</summary>
    public TracingOptions Tracing { get; init; } = new();

    /// <summary>The operator console (<c>Bulwark:Console</c>): on by default on loopback.</summary>
    public OperatorConsole.ConsoleOptions Console { get; init; } = new();

    /// <summary>The console log format (<c>Bulwark:Logging:Format</c>, <c>--log-format</c>): <c>text</c> (default) or <c>json</c>.</summary>
    public string LogFormat { get; init; } = "text";

    public const string LogFormatKey = "Bulwark:Logging:Format";

    /// <summary>Configuration key of the data directory (<c>--data-dir</c>; else <c>BULWARK_DATA_DIR</c>, else the per-user default).</summary>
    public const string DataDirKey = "Bulwark:DataDir";

    /// <summary>Whether the output guard redacts secrets in generated text (default true).</summary>
    public const string RedactSecretsKey = "Bulwark:Guardrails:RedactSecrets";

    /// <exception cref="ServerConfigurationException">Lists every malformed or out-of-range setting at once.</exception>
    public static ServerSettings Read(IConfiguration configuration)
    {
        var problems = new List<string>();
        var server = Bind<ServerOptions>(configuration, ServerOptions.Section, problems);
        var limits = Bind<ApiLimits>(configuration, ApiLimits.Section, problems);
        var admission = Bind<AdmissionOptions>(configuration, AdmissionOptions.Section, problems);
        var serve = Bind<ServeOptions>(configuration, ServeOptions.Section, problems);
        var degradation = Bind<DegradationOptions>(configuration, DegradationOptions.Section, problems);
        problems.AddRange(server.Validate());
        problems.AddRange(limits.Validate());
        problems.AddRange(admission.Validate());
        problems.AddRange(serve.Validate());
        problems.AddRange(degradation.Validate());
        var memory = Bind<MemoryOptions>(configuration, MemoryOptions.Section, problems);
        problems.AddRange(memory.Validate());
        var console = Bind<OperatorConsole.ConsoleOptions>(configuration, OperatorConsole.ConsoleOptions.Section, problems);
        problems.AddRange(console.Validate());
        var tracing = Bind<TracingOptions>(configuration, TracingOptions.Section, problems);
        problems.AddRange(tracing.Validate(configuration));
        var logging = Bind<ConsoleLogOptions>(configuration, ConsoleLogOptions.Section, problems);
        var logFormat = logging.Format;
        if (logFormat is not ("text" or "json")) problems.Add($"{LogFormatKey} must be text or json; got '{logFormat}'.");
        var upstreams = Bind<Dictionary<string, UpstreamPoolOptions>>(configuration, UpstreamPoolOptions.Section, problems);
        if (upstreams.Count > 64) problems.Add($"{UpstreamPoolOptions.Section} may name at most 64 pools; got {upstreams.Count}.");
        foreach (var (name, pool) in upstreams)
        {
            if (name.Length is 0 or > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
                problems.Add($"{UpstreamPoolOptions.Section}:{name}: a pool name is 1 to 64 letters, digits, '-' or '_'.");
            problems.AddRange(pool.Validate(name));
        }
        var redact = true;
        if (configuration[RedactSecretsKey] is { } text && !bool.TryParse(text, out redact))
            problems.Add($"{RedactSecretsKey} must be true or false; got '{text}'.");
        if (problems.Count > 0) throw new ServerConfigurationException(problems);
        return new ServerSettings(server, limits, admission, serve, DataDirectory.Resolve(configuration[DataDirKey]), redact, upstreams)
        {
            Degradation = degradation,
            Memory = memory,
            Tracing = tracing,
            Console = console,
            LogFormat = logFormat,
        };
    }

    private static T Bind<T>(IConfiguration configuration, string section, List<string> problems) where T : new()
    {
        var options = new T();
        try
        {
            configuration.GetSection(section).Bind(options, o => o.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            // The binder names the key and the type it expected ("Failed to convert configuration value at 'Bulwark:Server:Port'...").
            problems.Add(e.Message);
        }
        return options;
    }
}
