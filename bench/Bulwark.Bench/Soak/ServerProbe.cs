using System.Globalization;
using System.Net.Http.Headers;

namespace Bulwark.Bench.Soak;

/// <summary>
/// The server process at one instant: resident set, threads and open file descriptors from
/// <c>/proc/PID</c>, and the .NET runtime's figures from its <c>/metrics</c> (GC heap and committed
/// bytes after the last collection, collections by generation, bytes allocated since start), the
/// KV cache's blocks and how many of them have been handed out at least once, glibc malloc's arenas and
/// bytes, and the full collections the server asked for itself (with their summed pauses).
/// </summary>
internal sealed record ServerReading(long RssBytes, int Threads, int OpenFiles, long HeapBytes, long CommittedBytes, long Gen0, long Gen1, long Gen2, long AllocatedBytes,
    long KvBlocks = 0, long KvBlocksTouched = 0, long MallocArenas = 0, long MallocBytes = 0, long RequestedGen2 = 0, double RequestedPauseSeconds = 0);

/// <summary>Reads a <see cref="ServerReading"/> of one server process, by its pid and its <c>/metrics</c> (with an admin key).</summary>
internal sealed class ServerProbe(int pid, HttpClient metrics)
{
    public static HttpClient MetricsClient(Uri address, string adminKey)
    {
        var client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminKey);
        return client;
    }

    public async Task<ServerReading> ReadAsync(CancellationToken ct)
    {
        var status = await File.ReadAllLinesAsync($"/proc/{pid}/status", ct);
        long Status(string field) =>
            long.Parse(status.Single(l => l.StartsWith(field + ":", StringComparison.Ordinal)).Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        var openFiles = Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length;
        var exposition = Parse(await metrics.GetStringAsync("metrics", ct));
        long Metric(string series) => exposition.TryGetValue(series, out var value)
            ? (long)value
            : throw new InvalidOperationException($"the server's /metrics has no {series}");
        return new ServerReading(Status("VmRSS") * 1024, (int)Status("Threads"), openFiles,
            Metric("bulwark_dotnet_gc_heap_bytes"), Metric("bulwark_dotnet_gc_committed_bytes"),
            Metric("bulwark_dotnet_gc_collections_total{generation=\"0\"}"), Metric("bulwark_dotnet_gc_collections_total{generation=\"1\"}"),
            Metric("bulwark_dotnet_gc_collections_total{generation=\"2\"}"), Metric("bulwark_dotnet_gc_allocated_bytes_total"),
            Metric("bulwark_kv_blocks"), Metric("bulwark_kv_blocks_touched"),
            // Absent without glibc, or from a server built before they existed: 0 then.
            (long)exposition.GetValueOrDefault("bulwark_malloc_arenas"), (long)exposition.GetValueOrDefault("bulwark_malloc_system_bytes"),
            (long)exposition.GetValueOrDefault("bulwark_dotnet_gc_requested_collections_total"), exposition.GetValueOrDefault("bulwark_dotnet_gc_requested_pause_seconds_total"));
    }

    /// <summary>Series (name and labels, as written) to value, from Prometheus text; comments skipped.</summary>
    internal static Dictionary<string, double> Parse(string exposition)
    {
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var line in exposition.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#') continue;
            var space = line.LastIndexOf(' ');
            if (space > 0 && double.TryParse(line.AsSpan(space + 1), NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
                values[line[..space]] = value;
        }
        return values;
    }
}
