using System.Diagnostics.Metrics;
using Bulwark.Server.Observability;

namespace Bulwark.Server.Tests.Observability;

/// <summary>
/// The exposition's label text is written into a reused buffer and its cell found by span
/// (<see cref="PrometheusExposition.Labels"/>); it must equal the plain string-building twin for
/// any tags, and measurements of one label set must land in one series however the tags were ordered.
/// </summary>
public sealed class PrometheusExpositionTests
{
    public static TheoryData<KeyValuePair<string, object?>[]> TagSets => new()
    {
        Array.Empty<KeyValuePair<string, object?>>(),
        new KeyValuePair<string, object?>[] { new("model", "demo") },
        new KeyValuePair<string, object?>[] { new("status", 200), new("route", "/v1/chat/completions"), new("method", "POST") },
        new KeyValuePair<string, object?>[] { new("b", "quote \" backslash \\ newline \n end"), new("a", 1.5), new("c", -3L) },
        new KeyValuePair<string, object?>[] { new("flag", true), new("kind", DayOfWeek.Monday), new("none", null), new("big", 12345678901234L) },
        new KeyValuePair<string, object?>[] { new("long", new string('x', 600)), new("tiny", 1e-300) },
        Enumerable.Range(0, 20).Select(i => new KeyValuePair<string, object?>("k" + (19 - i), i)).ToArray(),
    };

    [Theory]
    [MemberData(nameof(TagSets))]
    public void LabelsEqualThePlainTwin(KeyValuePair<string, object?>[] tags) =>
        Assert.Equal(PrometheusExposition.PlainLabels(tags), PrometheusExposition.Labels(tags).ToString());

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
