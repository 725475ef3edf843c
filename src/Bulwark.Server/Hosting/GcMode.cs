namespace Bulwark.Server.Hosting;

/// <summary>
/// The garbage collector's mode as the GC itself reports it: what <c>bulwark.runtimeconfig.json</c> sets
/// (workstation, non-concurrent, conserve memory 5, large objects from 1 MiB: see docs/reliability.md) unless
/// the operator's <c>DOTNET_gcServer</c>, <c>DOTNET_gcConcurrent</c>, <c>DOTNET_GCConserveMemory</c>,
/// <c>DOTNET_GCLOHThreshold</c> or <c>DOTNET_GCHeapHardLimit</c> say otherwise. <c>serve</c> prints it, so an override shows.
/// </summary>
public static class GcMode
{
    public static string Describe()
    {
        var c = GC.GetConfigurationVariables();
        bool Flag(string key) => c.TryGetValue(key, out var v) && v is true;
        long Number(string key) => c.TryGetValue(key, out var v) && v is long n ? n : 0;
        var kind = Flag("ServerGC")
            ? $"server ({Number("HeapCount")} heaps{(Number("GCDynamicAdaptationMode") == 1 ? ", DATAS" : "")})"
            : "workstation";
        var limit = Number("GCHeapHardLimit") is > 0 and var bytes ? $", heap limit {bytes / (1024 * 1024)} MiB" : "";
        return $"GC {kind}, {(Flag("ConcurrentGC") ? "concurrent" : "non-concurrent")}, conserve memory {Number("GCConserveMem")}, " +
            $"large objects from {Number("LOHThreshold") / 1024} KiB{limit}";
    }
}
