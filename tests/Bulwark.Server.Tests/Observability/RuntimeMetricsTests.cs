using System.Diagnostics.Metrics;
using System.Globalization;
using Bulwark.Server.Observability;

namespace Bulwark.Server.Tests.Observability;

/// <summary>
/// The runtime's memory figures on <c>/metrics</c>, held against the runtime's own
/// <c>System.Runtime</c> meter (read before and after each scrape, since other tests allocate and
/// collect meanwhile) and against <c>/proc/self/status</c>.
/// </summary>
public sealed class RuntimeMetricsTests
{
    [Fact]
    public void CollectionsAndAllocatedBytesAgreeWithTheRuntimesOwnMeter()
    {
        using var metrics = new ServerMetrics(() => default, () => (0, 0));
        using var exposition = new PrometheusExposition(metrics.Meter);
        GC.Collect(); // a collection of every generation, so none of the counts is zero

        var before = RuntimeMeter();
        var text = exposition.Render();
        var after = RuntimeMeter();

        foreach (var generation in new[] { "0", "1", "2" })
        {
            var scraped = Scraped(text, $"bulwark_dotnet_gc_collections_total{{generation=\"{generation}\"}}");
            var (low, high) = (before[$"dotnet.gc.collections/gen{generation}"], after[$"dotnet.gc.collections/gen{generation}"]);
            Assert.True(low <= scraped && scraped <= high, $"generation {generation}: scraped {scraped}, the runtime counted {low} before and {high} after");
        }
        Assert.True(before["dotnet.gc.collections/gen2"] >= 1);
        var allocated = Scraped(text, "bulwark_dotnet_gc_allocated_bytes_total");
        Assert.InRange(allocated, before["dotnet.gc.heap.total_allocated/"], after["dotnet.gc.heap.total_allocated/"]);
    }

    [Fact]
    public void HeapSizeIsTheRuntimesSumOverGenerationsAtTheLastCollection()
    {
        using var metrics = new ServerMetrics(() => default, () => (0, 0));
        using var exposition = new PrometheusExposition(metrics.Meter);
        // The heap size changes at each collection: compare only when none came between the readings.
        for (var attempt = 1; ; attempt++)
        {
            var before = RuntimeMeter();
            var text = exposition.Render();
            var after = RuntimeMeter();
            if (!before.Where(p => p.Key.StartsWith("dotnet.gc.collections/")).SequenceEqual(after.Where(p => p.Key.StartsWith("dotnet.gc.collections/"))))
            {
                Assert.True(attempt < 20, "a collection came between the readings 20 times in a row");
                continue;
            }
            var generations = before.Where(p => p.Key.StartsWith("dotnet.gc.last_collection.heap.size/")).Sum(p => p.Value);
            Assert.Equal(generations, Scraped(text, "bulwark_dotnet_gc_heap_bytes"));
            Assert.True(Scraped(text, "bulwark_dotnet_gc_committed_bytes") >= generations);
            return;
        }
    }

    [Fact]
    public void ResidentMemoryIsWhatTheKernelReports()
    {
        using var metrics = new ServerMetrics(() => default, () => (0, 0));
        using var exposition = new PrometheusExposition(metrics.Meter);
        var before = VmRss();
        var scraped = Scraped(exposition.Render(), "bulwark_process_resident_memory_bytes");
        var after = VmRss();
        // Other tests allocate meanwhile; a tenth either way still tells a wrong source (virtual size, a peak) apart.
        Assert.InRange(scraped, Math.Min(before, after) * 0.9, Math.Max(before, after) * 1.1);
    }

    /// <summary>The runtime meter's current values, as "instrument/generation" (generation empty when the instrument has none).</summary>
    private static Dictionary<string, double> RuntimeMeter()
    {
        var values = new Dictionary<string, double>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "System.Runtime") l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            var generation = "";
            foreach (var tag in tags)
                if (tag.Key == "gc.heap.generation") generation = (string)tag.Value!;
            values[instrument.Name + "/" + generation] = value;
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return values;
    }

    private static double Scraped(string exposition, string series)
    {
        var line = exposition.Split('\n').Single(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        return double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture);
    }

    private static double VmRss()
    {
        var line = File.ReadLines("/proc/self/status").Single(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024.0;
    }
}
