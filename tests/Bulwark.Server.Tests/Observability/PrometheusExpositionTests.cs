using System.Diagnostics.Metrics;
using Bulwark.Server.Observability;

namespace Bulwark.Server.Tests.Observability;

/// <summary>
/// Measurements of one label set must land in one series however the tags were ordered, with escaped values
/// (the label text itself is held to its from-scratch twin in <see cref="LabelCacheTests"/>).
/// </summary>
public sealed class PrometheusExpositionTests
{
    [Fact]
    public void OneLabelSetInAnyOrderIsOneSeriesWithEscapedValues()
    {
        using var meter = new Meter("test-" + Guid.NewGuid());
        using var exposition = new PrometheusExposition(meter);
        var counter = meter.CreateCounter<long>("bulwark_test_requests");
        counter.Add(1, new("route", "/a"), new("code", 200));
        counter.Add(2, new("code", 200), new("route", "/a"));
        counter.Add(5, new("route", "say \"hi\""), new("code", 404));
        var text = exposition.Render();
        Assert.Contains("bulwark_test_requests_total{code=\"200\",route=\"/a\"} 3\n", text);
        Assert.Contains("bulwark_test_requests_total{code=\"404\",route=\"say \\\"hi\\\"\"} 5\n", text);
        Assert.Equal(2, text.Split('\n').Count(l => l.StartsWith("bulwark_test_requests_total{", StringComparison.Ordinal)));
    }
}
