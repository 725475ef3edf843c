using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Bulwark.Bench.Soak;

/// <summary>What a soak ran with. <see cref="Warmup"/>: a fixed time, or null for <see cref="SoakWarmup.End"/>.</summary>
internal sealed record SoakSettings(
    TimeSpan Duration, TimeSpan Interval, TimeSpan? Warmup, int Concurrency, int MaxTokens, SoakMix Mix, int DisconnectAfter, int Seed, string? KvCacheMemory)
{
    /// <summary><c>--serve-setting</c>: configuration keys (<c>Bulwark:Memory:MallocArenaMax</c>) and values passed to <c>serve</c> as its environment.</summary>
    public IReadOnlyDictionary<string, string> ServeSettings { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// A finished soak: the table over time (per interval: the server's memory and GC, the clients'
/// outcomes and latency), the verdict after warm-up, and the raw samples as CSV and JSON.
/// </summary>
internal sealed record SoakReport(SoakSettings Settings, string Model, int ServerPid, IReadOnlyList<SoakSample> Samples, SoakVerdict Verdict)
{
    private const double MiB = 1024 * 1024;

    public int Total(Func<ClientInterval, int> count) => Samples.Sum(s => count(s.Clients));

    public string? FirstFailure => Samples.Select(s => s.Clients.FirstFailure).FirstOrDefault(f => f is not null);

    public string ToTable()
    {
        var s = Settings;
        var t = new StringBuilder();
        t.AppendLine(Invariant($"soak: bulwark serve (pid {ServerPid}, model {Model}, KV cache {s.KvCacheMemory ?? "serve's default"}) for {Span(s.Duration)}, concurrency {s.Concurrency}, max_tokens {s.MaxTokens}, seed {s.Seed}"));
        if (s.ServeSettings.Count > 0) t.AppendLine("  serve settings: " + string.Join(", ", s.ServeSettings.Select(p => $"{p.Key}={p.Value}")));
        t.AppendLine(Invariant($"  mix: {s.Mix.DisconnectShare:P0} leave after {s.DisconnectAfter} events, {s.Mix.RefusedShare:P0} refused (bad key / over-long prompt), the rest chat and completions, {s.Mix.StreamShare:P0} streamed"));
        t.AppendLine(Invariant($"  a sample every {Span(s.Interval)}; warm-up {(s.Warmup is { } w ? Span(w) : "until every KV block was used and a gen2 GC followed (or 5 minutes passed)")}; GC and alloc columns are per interval"));
        t.AppendLine(Header);
        for (var i = 0; i < Samples.Count; i++) t.AppendLine(Row(Samples[i], i > 0 ? Samples[i - 1].Server : null));
        var v = Verdict;
        var last = Samples[^1].Server;
        t.AppendLine(double.IsFinite(v.WarmupSeconds)
            ? Invariant($"after warm-up (samples at {v.WarmupSeconds:0} s and later: {v.Samples}; judged window {Span(TimeSpan.FromSeconds(Math.Round(v.JudgedSeconds)))}):")
            : Invariant($"warm-up never ended: {last.KvBlocksTouched} of {last.KvBlocks} KV blocks used, or no gen2 GC after that (pass --warmup to judge anyway)"));
        t.AppendLine(v.Rss.Drift is { } drift
            ? Invariant($"  RSS                {v.Rss.MinBytes / MiB:0.0}..{v.Rss.MaxBytes / MiB:0.0} MiB, drift {drift:P1}: {(v.RssFlat ? "flat" : "NOT flat")} within {SoakVerdict.FlatLimit:P0}; slope {v.RssSlopeMiBPerHour:+0.0;-0.0;0.0} MiB/h")
            : "  RSS                too few samples after warm-up to judge");
        if (v.OutsideGc.Drift is { } outside)
            t.AppendLine(Invariant($"  RSS outside the GC {v.OutsideGc.MinBytes / MiB:0.0}..{v.OutsideGc.MaxBytes / MiB:0.0} MiB, drift {outside:P1} (RSS − GC committed: KV cache, code, stacks)"));
        if (v.HeapSlopeMiBPerHour is { } heap) t.AppendLine(Invariant($"  GC heap            slope {heap:+0.0;-0.0;0.0} MiB/h"));
        var first = Samples[0].Server;
        t.AppendLine(Invariant($"  server             {last.Gen2} gen2 GCs ({last.RequestedGen2} it asked for, {last.RequestedPauseSeconds * 1000:0.0} ms of pauses in those); malloc arenas {first.MallocArenas} idle, {last.MallocArenas} at the end; malloc {last.MallocBytes / MiB:0.0} MiB at the end"));
        t.AppendLine(v.P99Drift is { } p99
            ? Invariant($"  p99                first window {Ms(v.P99FirstSeconds!.Value)} ms, last window {Ms(v.P99LastSeconds!.Value)} ms: drift {p99:+0.0 %;-0.0 %}")
            : "  p99                too few windows after warm-up to compare");
        if (v.P99FifthDrift is { } fifths)
            t.AppendLine(Invariant($"  p99, median of the first and last fifth of windows: {Ms(v.P99FirstFifthSeconds!.Value)} ms, {Ms(v.P99LastFifthSeconds!.Value)} ms: drift {fifths:+0.0 %;-0.0 %}"));
        t.AppendLine(Invariant($"requests: {Total(c => c.Completed)} completed, {Total(c => c.Refused)} refused as meant, {Total(c => c.Disconnected)} left mid-stream, {Total(c => c.Failed)} failed"));
        if (FirstFailure is { } failure) t.AppendLine("  first failure: " + failure);
        return t.ToString();
    }

    public const string Header = "     t s  RSS MiB heap MiB  com MiB  gc0  gc1  gc2 req2 alloc MiB  kv used arena mal MiB  thr  fds     ok  refus   left  fail   p50 ms   p99 ms";

    /// <summary>One sample as a line of the table; GC and allocation columns count since <paramref name="previous"/> (since start, for the first).</summary>
    public static string Row(SoakSample sample, ServerReading? previous)
    {
        var (r, c) = (sample.Server, sample.Clients);
        var p = previous ?? r with { Gen0 = 0, Gen1 = 0, Gen2 = 0, AllocatedBytes = 0, RequestedGen2 = 0 };
        return Invariant(
            $"{sample.Seconds,8:0} {r.RssBytes / MiB,8:0.0} {r.HeapBytes / MiB,8:0.0} {r.CommittedBytes / MiB,8:0.0} {r.Gen0 - p.Gen0,4} {r.Gen1 - p.Gen1,4} {r.Gen2 - p.Gen2,4} {r.RequestedGen2 - p.RequestedGen2,4} {(r.AllocatedBytes - p.AllocatedBytes) / MiB,9:0.0} {KvUsed(r),8} {r.MallocArenas,5} {r.MallocBytes / MiB,7:0.0} {r.Threads,4} {r.OpenFiles,4} {c.Completed,6} {c.Refused,6} {c.Disconnected,6} {c.Failed,5} {Ms(c.Latency.P50),8} {Ms(c.Latency.P99),8}");
    }

    public static string CsvHeader =>
        "seconds,rss_bytes,heap_bytes,committed_bytes,gc0,gc1,gc2,allocated_bytes,kv_blocks,kv_blocks_touched,threads,open_files,completed,refused,disconnected,failed,latency_count,p50_ms,p99_ms,malloc_arenas,malloc_bytes,requested_gen2,requested_pause_s";

    /// <summary>One row per sample; GC counts and allocated bytes cumulative since the server started, as read.</summary>
    public string ToCsv()
    {
        var t = new StringBuilder().AppendLine(CsvHeader);
        foreach (var (seconds, r, c) in Samples)
            t.AppendLine(Invariant($"{seconds:0.###},{r.RssBytes},{r.HeapBytes},{r.CommittedBytes},{r.Gen0},{r.Gen1},{r.Gen2},{r.AllocatedBytes},{r.KvBlocks},{r.KvBlocksTouched},{r.Threads},{r.OpenFiles},{c.Completed},{c.Refused},{c.Disconnected},{c.Failed},{c.Latency.Count},{Csv(c.Latency.P50)},{Csv(c.Latency.P99)},{r.MallocArenas},{r.MallocBytes},{r.RequestedGen2},{r.RequestedPauseSeconds:0.######}"));
        return t.ToString();
    }

    public string ToJson()
    {
        var s = Settings;
        var v = Verdict;
        return JsonSerializer.Serialize(new
        {
            model = Model, server_pid = ServerPid,
            settings = new
            {
                duration_s = s.Duration.TotalSeconds, interval_s = s.Interval.TotalSeconds, warmup_s = s.Warmup?.TotalSeconds, warmup_auto = s.Warmup is null, concurrency = s.Concurrency,
                max_tokens = s.MaxTokens, disconnect_share = s.Mix.DisconnectShare, refused_share = s.Mix.RefusedShare, stream_share = s.Mix.StreamShare,
                disconnect_after = s.DisconnectAfter, seed = s.Seed, kv_cache_memory = s.KvCacheMemory, serve_settings = s.ServeSettings,
            },
            verdict = new
            {
                warmup_end_s = double.IsFinite(v.WarmupSeconds) ? v.WarmupSeconds : (double?)null, samples = v.Samples, judged_s = v.JudgedSeconds, rss_min_bytes = v.Rss.MinBytes, rss_max_bytes = v.Rss.MaxBytes, rss_drift = v.Rss.Drift, rss_flat = v.RssFlat, flat_limit = SoakVerdict.FlatLimit,
                outside_gc_min_bytes = v.OutsideGc.MinBytes, outside_gc_max_bytes = v.OutsideGc.MaxBytes, outside_gc_drift = v.OutsideGc.Drift,
                rss_slope_mib_per_hour = v.RssSlopeMiBPerHour, heap_slope_mib_per_hour = v.HeapSlopeMiBPerHour,
                p99_first_ms = v.P99FirstSeconds * 1000, p99_last_ms = v.P99LastSeconds * 1000, p99_drift = v.P99Drift,
                p99_first_fifth_ms = v.P99FirstFifthSeconds * 1000, p99_last_fifth_ms = v.P99LastFifthSeconds * 1000, p99_fifth_drift = v.P99FifthDrift,
            },
            totals = new { completed = Total(c => c.Completed), refused = Total(c => c.Refused), disconnected = Total(c => c.Disconnected), failed = Total(c => c.Failed) },
            first_failure = FirstFailure,
            samples = Samples.Select(x => new
            {
                seconds = x.Seconds, rss_bytes = x.Server.RssBytes, heap_bytes = x.Server.HeapBytes, committed_bytes = x.Server.CommittedBytes,
                gc0 = x.Server.Gen0, gc1 = x.Server.Gen1, gc2 = x.Server.Gen2, allocated_bytes = x.Server.AllocatedBytes,
                kv_blocks = x.Server.KvBlocks, kv_blocks_touched = x.Server.KvBlocksTouched,
                malloc_arenas = x.Server.MallocArenas, malloc_bytes = x.Server.MallocBytes, requested_gen2 = x.Server.RequestedGen2, requested_pause_s = x.Server.RequestedPauseSeconds, threads = x.Server.Threads, open_files = x.Server.OpenFiles,
                completed = x.Clients.Completed, refused = x.Clients.Refused, disconnected = x.Clients.Disconnected, failed = x.Clients.Failed,
                latency_count = x.Clients.Latency.Count,
                p50_ms = x.Clients.Latency.Count > 0 ? x.Clients.Latency.P50 * 1000 : (double?)null,
                p99_ms = x.Clients.Latency.Count > 0 ? x.Clients.Latency.P99 * 1000 : (double?)null,
            }),
        }, new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Writes <c>soak-&lt;UTC time&gt;.csv</c> and <c>.json</c> into <paramref name="directory"/>; returns both paths.</summary>
    public (string Csv, string Json) WriteFiles(string directory, DateTime startedUtc)
    {
        Directory.CreateDirectory(directory);
        var stem = Path.Combine(directory, "soak-" + startedUtc.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture));
        File.WriteAllText(stem + ".csv", ToCsv());
        File.WriteAllText(stem + ".json", ToJson());
        return (stem + ".csv", stem + ".json");
    }

    /// <summary>30m, 2m30s, 45s: how the flags are written.</summary>
    internal static string Span(TimeSpan span) =>
        span.TotalSeconds % 60 == 0 ? Invariant($"{span.TotalMinutes:0}m") : span.TotalSeconds > 60 ? Invariant($"{(int)span.TotalMinutes}m{span.Seconds}s") : Invariant($"{span.TotalSeconds:0}s");

    /// <summary>Share of the KV blocks handed out at least once: 100 % once the cache's memory is all resident.</summary>
    private static string KvUsed(ServerReading r) => r.KvBlocks > 0 ? Invariant($"{(double)r.KvBlocksTouched / r.KvBlocks:0.0 %}") : "-";

    private static string Ms(double seconds) => double.IsNaN(seconds) ? "-" : (seconds * 1000).ToString("0.0", CultureInfo.InvariantCulture);

    private static string Csv(double seconds) => double.IsNaN(seconds) ? "" : (seconds * 1000).ToString("0.###", CultureInfo.InvariantCulture);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
