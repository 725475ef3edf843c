using Bulwark.Server.Observability;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Exporter;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Bulwark.Server.Hosting;

/// <summary>
/// Wires OpenTelemetry tracing when <see cref="TracingOptions.IsOn"/>: ASP.NET Core's server spans
/// (W3C <c>traceparent</c> from callers honoured), Bulwark's own spans (<see cref="BulwarkTracing"/>),
/// the OTLP exporter. When off, nothing is registered: no listener, no exporter, no per-request cost
/// beyond <see cref="BulwarkTracing.Start"/>'s one check. The SDK itself reads the other <c>OTEL_*</c>
/// settings (headers, timeout, batch sizes, sampler) from the same configuration.
/// </summary>
public static class TracingServices
{
    /// <summary>Paths never traced: probes and scrapes, which would start a trace every few seconds.</summary>
    private static readonly HashSet<string> Untraced = new(StringComparer.OrdinalIgnoreCase) { "/health", "/ready", "/metrics" };

    public static void AddBulwarkTracing(this IServiceCollection services, TracingOptions options, IConfiguration configuration)
    {
        if (!options.IsOn(configuration)) return;
        var protocol = options.ProtocolOf(configuration);
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(options.ServiceNameOf(configuration)))
            .WithTracing(tracing =>
            {
                tracing.AddSource(BulwarkTracing.SourceName);
                tracing.AddAspNetCoreInstrumentation(o =>
                {
                    o.Filter = context => !Untraced.Contains(context.Request.Path.Value ?? "");
                    // A query string can carry a key a client misplaced (refused, but still on the URL): never record it.
                    o.EnrichWithHttpRequest = static (span, _) => span.SetTag("url.query", null);
                    o.RecordException = false;
                });
                if (options.SampleRatio is { } ratio) tracing.SetSampler(new ParentBasedSampler(new TraceIdRatioBasedSampler(ratio)));
                tracing.AddOtlpExporter(otlp =>
                {
                    if (protocol is not null) otlp.Protocol = protocol == "http/protobuf" ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
                    if (options.Endpoint is { } endpoint) otlp.Endpoint = TracingOptions.TracesUrl(endpoint, protocol);
                });
            });
    }
}
