using System.Diagnostics.Metrics;

namespace Bulwark.Server.Observability;

/// <summary>
/// The process's memory as the .NET runtime sees it, on the server's meter, so a scrape of
/// <c>/metrics</c> shows whether the server holds on to memory over hours: the GC heap and what the
/// GC has committed after its last collection, collections by generation, bytes allocated, and the
/// resident set. The runtime's own <c>System.Runtime</c> meter has the GC figures too, but under
/// dotted names and labels the Prometheus text format does not allow, and
/// <see cref="PrometheusExposition"/> exports one meter with the documented names.
/// </summary>
internal static class RuntimeMetrics
{
    public static void AddTo(Meter meter)
    {
        meter.CreateObservableGauge("bulwark_dotnet_gc_heap_bytes", () => GC.GetGCMemoryInfo().HeapSizeBytes, "By",
            "GC heap size after the last collection, fragmentation included.");
        meter.CreateObservableGauge("bulwark_dotnet_gc_committed_bytes", () => GC.GetGCMemoryInfo().TotalCommittedBytes, "By",
            "Memory the GC had committed at the last collection.");
        meter.CreateObservableCounter("bulwark_dotnet_gc_collections", Collections, description: "Garbage collections, by the highest generation each collected.");
        meter.CreateObservableCounter("bulwark_dotnet_gc_allocated_bytes", () => GC.GetTotalAllocatedBytes(), "By", "Bytes allocated on the GC heap since start.");
        meter.CreateObservableCounter("bulwark_dotnet_gc_requested_collections", () => RequestedCollections.Count,
            description: "Full collections the server asked for (Bulwark:Memory:Gen2WhenGrownBy), counted in the gen2 series too.");
        meter.CreateObservableCounter("bulwark_dotnet_gc_requested_pause_seconds", () => RequestedCollections.Pause.TotalSeconds, "s",
            "Pauses of those collections, summed.");
        meter.CreateObservableGauge("bulwark_malloc_arenas", MallocArenas, description: "glibc malloc arenas (Bulwark:Memory:MallocArenaMax caps them); absent without glibc.");
        meter.CreateObservableGauge("bulwark_malloc_system_bytes", MallocBytes, "By", "Bytes glibc malloc holds from the system over all arenas, mmap'd blocks included; absent without glibc.");
        meter.CreateObservableGauge("bulwark_process_resident_memory_bytes", () => Environment.WorkingSet, "By", "Resident set size of the server process.");
    }

    private static IEnumerable<Measurement<long>> MallocArenas() =>
        NativeHeap.Read() is { } heap ? [new(heap.Arenas)] : [];

    private static IEnumerable<Measurement<long>> MallocBytes() =>
        NativeHeap.Read() is { } heap ? [new(heap.SystemBytes)] : [];

    private static Measurement<long>[] Collections()
    {
        // GC.CollectionCount(n) counts every collection of generation n or higher; the series count
        // each collection once, under its highest generation, as the runtime's dotnet.gc.collections does.
        var gen2 = GC.CollectionCount(2);
        var gen1 = GC.CollectionCount(1);
        var gen0 = GC.CollectionCount(0);
        return
        [
            new(gen0 - gen1, new KeyValuePair<string, object?>("generation", "0")),
            new(gen1 - gen2, new KeyValuePair<string, object?>("generation", "1")),
            new(gen2, new KeyValuePair<string, object?>("generation", "2")),
        ];
    }
}
