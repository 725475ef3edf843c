using Bulwark.Server.Hosting;
using Bulwark.Server.Observability;
using Microsoft.Extensions.Configuration;

namespace Bulwark.Server.Tests.Observability;

public sealed class TracingOptionsTests
{
    private static IConfiguration Config(params (string Key, string Value)[] settings) =>
        new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))).Build();

    [Fact]
    public void TracingIsOffUntilAnEndpointIsConfiguredOrItIsEnabled()
    {
        Assert.False(new TracingOptions().IsOn(Config()));
        Assert.True(new TracingOptions().IsOn(Config(("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"))));
        Assert.True(new TracingOptions().IsOn(Config(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces"))));
        Assert.True(new TracingOptions { Endpoint = "http://collector:4317" }.IsOn(Config()));
        Assert.True(new TracingOptions { Enabled = true }.IsOn(Config()));
        Assert.False(new TracingOptions { Enabled = false, Endpoint = "http://collector:4317" }.IsOn(Config()));
        Assert.False(new TracingOptions { Enabled = true }.IsOn(Config(("OTEL_SDK_DISABLED", "TRUE"))));
        Assert.False(new TracingOptions { Enabled = true }.IsOn(Config(("OTEL_TRACES_EXPORTER", "none"))));
    }

    [Fact]
    public void TheServiceNameAndProtocolComeFromBulwarkSettingsThenOtelVariablesThenDefaults()
    {
        Assert.Equal("bulwark", new TracingOptions().ServiceNameOf(Config()));
        Assert.Equal("gw-eu", new TracingOptions().ServiceNameOf(Config(("OTEL_SERVICE_NAME", "gw-eu"))));
        Assert.Equal("mine", new TracingOptions { ServiceName = "mine" }.ServiceNameOf(Config(("OTEL_SERVICE_NAME", "gw-eu"))));
        Assert.Null(new TracingOptions().ProtocolOf(Config()));
        Assert.Equal("http/protobuf", new TracingOptions().ProtocolOf(Config(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"))));
        Assert.Equal("grpc", new TracingOptions().ProtocolOf(Config(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"), ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"))));
        Assert.Equal("grpc", new TracingOptions { Protocol = "grpc" }.ProtocolOf(Config(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"))));
    }

    [Fact]
    public void TheSdksDefaultProtocolIsGrpcAsTheDocsSay() =>
        Assert.Equal(OpenTelemetry.Exporter.OtlpExportProtocol.Grpc, new OpenTelemetry.Exporter.OtlpExporterOptions().Protocol);

    [Fact]
    public void AnEndpointGivenInSettingsGetsTheTracesPathOnlyOverHttp()
    {
        Assert.Equal("http://collector:4318/v1/traces", TracingOptions.TracesUrl("http://collector:4318/", "http/protobuf").ToString());
        Assert.Equal("http://collector:4317/", TracingOptions.TracesUrl("http://collector:4317", "grpc").ToString());
        Assert.Equal("http://collector:4317/", TracingOptions.TracesUrl("http://collector:4317", null).ToString());
    }

    [Theory]
    [InlineData("Bulwark:Tracing:Endpoint", "collector:4317", "absolute http:// or https:// URL")]
    [InlineData("Bulwark:Tracing:Endpoint", "ftp://collector", "absolute http:// or https:// URL")]
    [InlineData("Bulwark:Tracing:Endpoint", "http://collector:4318/?token=x", "without a query")]
    [InlineData("Bulwark:Tracing:Protocol", "http/json", "grpc or http/protobuf")]
    [InlineData("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift", "grpc or http/protobuf")]
    [InlineData("Bulwark:Tracing:SampleRatio", "1.5", "between 0 and 1")]
    [InlineData("Bulwark:Tracing:SampleRatio", "-0.01", "between 0 and 1")]
    [InlineData("Bulwark:Tracing:ServiceName", "", "1 to 255 characters")]
    [InlineData("OTEL_TRACES_EXPORTER", "zipkin", "otlp or none")]
    [InlineData("Bulwark:Logging:Format", "xml", "text or json")]
    [InlineData("Bulwark:Logging:Level", "Debug", "'Level'")]
    [InlineData("Bulwark:Tracing:Exporter", "zipkin", "'Exporter'")]
    public void AMalformedTracingOrLoggingSettingStopsStartUpNamingIt(string key, string value, string expected)
    {
        var e = Assert.Throws<ServerConfigurationException>(() => ServerSettings.Read(Config((key, value))));
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("text")]
    [InlineData("json")]
    public void BothLogFormatsAreAccepted(string format) =>
        Assert.Equal(format, ServerSettings.Read(Config(("Bulwark:Logging:Format", format))).LogFormat);

    [Theory]
    [InlineData("0")]
    [InlineData("1")]
    [InlineData("0.25")]
    public void SampleRatiosFromZeroToOneAreAccepted(string ratio) =>
        Assert.Equal(double.Parse(ratio, System.Globalization.CultureInfo.InvariantCulture), ServerSettings.Read(Config(("Bulwark:Tracing:SampleRatio", ratio))).Tracing.SampleRatio);
}
