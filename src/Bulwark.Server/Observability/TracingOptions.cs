using Microsoft.Extensions.Configuration;

namespace Bulwark.Server.Observability;

/// <summary>
/// Tracing (configuration section <c>Bulwark:Tracing</c>, beside the standard <c>OTEL_*</c> variables
/// the OpenTelemetry SDK reads itself). Off unless an OTLP endpoint is configured here or in
/// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> / <c>OTEL_EXPORTER_OTLP_TRACES_ENDPOINT</c>, or
/// <see cref="Enabled"/> is true (then the SDK's default endpoint). A setting here wins over its
/// <c>OTEL_*</c> twin; <c>OTEL_SDK_DISABLED=true</c> or <c>OTEL_TRACES_EXPORTER=none</c> turn it off.
/// </summary>
public sealed class TracingOptions
{
    public const string Section = "Bulwark:Tracing";

    /// <summary>true: on (at the SDK's default endpoint unless one is set); false: off whatever else says; null: on when an endpoint is configured.</summary>
    public bool? Enabled { get; set; }

    /// <summary>The OTLP collector's base URL (e.g. <c>http://otel-collector:4318</c>); for http/protobuf, <c>/v1/traces</c> is added.</summary>
    public string? Endpoint { get; set; }

    /// <summary><c>grpc</c> or <c>http/protobuf</c> (else <c>OTEL_EXPORTER_OTLP_PROTOCOL</c>, else the SDK's default, grpc).</summary>
    public string? Protocol { get; set; }

    /// <summary>The <c>service.name</c> resource attribute (else <c>OTEL_SERVICE_NAME</c>, else <c>bulwark</c>).</summary>
    public string? ServiceName { get; set; }

    /// <summary>The share of new traces recorded, 0..1, honouring a caller's sampled flag (else <c>OTEL_TRACES_SAMPLER</c>/<c>_ARG</c>, else all).</summary>
    public double? SampleRatio { get; set; }

    public const string DefaultServiceName = "bulwark";

    public IEnumerable<string> Validate(IConfiguration configuration)
    {
        if (Endpoint is { } endpoint && (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Query.Length > 0))
            yield return $"{Section}:Endpoint must be an absolute http:// or https:// URL without a query; got '{endpoint}'.";
        if (ProtocolOf(configuration) is { } protocol && protocol is not ("grpc" or "http/protobuf"))
            yield return $"{Section}:Protocol (or OTEL_EXPORTER_OTLP_PROTOCOL) must be grpc or http/protobuf; got '{protocol}'.";
        if (ServiceName is { } name && (name.Length is 0 or > 255 || name.Any(char.IsControl)))
            yield return $"{Section}:ServiceName must be 1 to 255 characters without control characters; got {name.Length} characters.";
        if (SampleRatio is { } ratio && !(ratio >= 0 && ratio <= 1))
            yield return $"{Section}:SampleRatio must be between 0 and 1; got {ratio}.";
        if (configuration["OTEL_TRACES_EXPORTER"] is { Length: > 0 } exporter && exporter is not ("otlp" or "none"))
            yield return $"OTEL_TRACES_EXPORTER must be otlp or none (Bulwark exports traces only over OTLP); got '{exporter}'.";
    }

    /// <summary>Whether traces are recorded and exported at all.</summary>
    public bool IsOn(IConfiguration configuration)
    {
        if (string.Equals(configuration["OTEL_SDK_DISABLED"], "true", StringComparison.OrdinalIgnoreCase)) return false;
        if (configuration["OTEL_TRACES_EXPORTER"] == "none") return false;
        return Enabled ?? (!string.IsNullOrWhiteSpace(Endpoint)
            || !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"])
            || !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]));
    }

    public string ServiceNameOf(IConfiguration configuration) =>
        ServiceName ?? (configuration["OTEL_SERVICE_NAME"] is { Length: > 0 } name ? name : DefaultServiceName);

    public string? ProtocolOf(IConfiguration configuration) =>
        Protocol ?? NonEmpty(configuration["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]) ?? NonEmpty(configuration["OTEL_EXPORTER_OTLP_PROTOCOL"]);

    private static string? NonEmpty(string? text) => string.IsNullOrWhiteSpace(text) ? null : text;

    /// <summary>The exporter's URL for <see cref="Endpoint"/>: OTLP/HTTP takes traces at <c>/v1/traces</c>, gRPC at the base URL.</summary>
    public static Uri TracesUrl(string endpoint, string? protocol) =>
        protocol == "http/protobuf" ? new Uri(endpoint.TrimEnd('/') + "/v1/traces") : new Uri(endpoint);
}
