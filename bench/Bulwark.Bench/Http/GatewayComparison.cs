using System.Globalization;
using System.Text;
using System.Text.Json;
using Bulwark.Bench.Security;
using Bulwark.Cli.Terminal;
using Bulwark.Server;
using Bulwark.Server.Backends;
using Bulwark.Server.Hosting;
using Bulwark.Server.Models;
using Bulwark.Server.Security;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bulwark.Bench.Http;

/// <summary>A comparison's report, as a table or one line of JSON.</summary>
internal interface IComparisonReport
{
    string ToTable();
    string ToJson();
}

/// <summary>What <c>bench/run serve --compare-gateway</c> measured: client-side latency of the same request sent directly and through the gateway, in µs.</summary>
/// <param name="PairedDifference">Percentiles of through − direct within each pair: steadier than the difference of p50s when the upstream's latency is noisy.</param>
/// <param name="ThroughCost">CPU time and allocation of the whole process per request sent through the gateway (<see cref="CostPerRequest"/>).</param>
/// <param name="DirectCost">The same per request sent directly.</param>
/// <param name="Segments">Where a request through the gateway spends its time (<see cref="GatewayTimeline"/>).</param>
/// <param name="Warmup">Warm-up pairs run (with <paramref name="JitQuiet"/> set: until the JIT was quiet).</param>
/// <param name="JitQuiet">Null: the warm-up was the fixed count asked for; true: it ran until no method was compiled for <see cref="GatewayComparison.QuietPairs"/> pairs and <see cref="GatewayComparison.QuietTime"/>; false: it stopped at its time limit first.</param>
internal sealed record GatewayComparisonReport(int Requests, int Warmup, bool? JitQuiet, int MaxTokens, bool InstantEngine, Percentiles Through, Percentiles Direct, Percentiles PairedDifference,
    RequestCost ThroughCost, RequestCost DirectCost, int CostBlocks, int CostBlockRequests, GatewaySegments Segments)
    : IComparisonReport
{
    public double AddedP50 => Through.P50 - Direct.P50;
    public double AddedP99 => Through.P99 - Direct.P99;
    public double AddedCpu => ThroughCost.CpuMicroseconds - DirectCost.CpuMicroseconds;
    public double AddedAllocated => ThroughCost.AllocatedBytes - DirectCost.AllocatedBytes;

    public string ToTable()
    {
        string F(double v) => v.ToString("0.0", CultureInfo.InvariantCulture);
        var t = new StringBuilder();
        var warm = JitQuiet switch
        {
            true => $"{Warmup} warm-up, until no method was JIT-compiled for {GatewayComparison.QuietPairs} pairs and {GatewayComparison.QuietTime.TotalSeconds:0} s",
            false => $"{Warmup} warm-up, stopped at its time limit with the JIT still compiling",
            null => $"{Warmup} warm-up",
        };
        t.AppendLine(CultureInfo.InvariantCulture, $"through the gateway vs directly to the upstream, {Requests} requests each (after {warm}), max_tokens {MaxTokens}, alternating{(InstantEngine ? ", upstream answering at once (tokenizer only)" : "")}");
        t.AppendLine(CultureInfo.InvariantCulture, $"  through the gateway: p50 {F(Through.P50)} µs   p99 {F(Through.P99)} µs   (API key, in-memory quotas, SQLite audit, streaming relay)");
        t.AppendLine(CultureInfo.InvariantCulture, $"  directly           : p50 {F(Direct.P50)} µs   p99 {F(Direct.P99)} µs");
        t.AppendLine(CultureInfo.InvariantCulture, $"  added by the gateway: p50 {F(AddedP50)} µs   p99 {F(AddedP99)} µs   (target p50 <= 300 µs)");
        t.AppendLine(CultureInfo.InvariantCulture, $"  through − direct within each pair: p50 {F(PairedDifference.P50)} µs   p99 {F(PairedDifference.P99)} µs");
        t.AppendLine(CultureInfo.InvariantCulture, $"process CPU and allocation per request, median of {CostBlocks} alternating blocks of {CostBlockRequests} (client, upstream and gateway share the process; steadier than wall time on a loaded machine):");
        t.AppendLine(CultureInfo.InvariantCulture, $"  through the gateway: {F(ThroughCost.CpuMicroseconds)} µs CPU   {ThroughCost.AllocatedBytes:0} B allocated");
        t.AppendLine(CultureInfo.InvariantCulture, $"  directly           : {F(DirectCost.CpuMicroseconds)} µs CPU   {DirectCost.AllocatedBytes:0} B allocated");
        t.AppendLine(CultureInfo.InvariantCulture, $"  added by the gateway: {F(AddedCpu)} µs CPU   {AddedAllocated:0} B allocated");
        t.AppendLine(CultureInfo.InvariantCulture, $"a request through the gateway, median of {Segments.Requests} (from hosting's diagnostic events and HttpClient's event source, listened to in this phase only):");
        t.AppendLine(CultureInfo.InvariantCulture, $"  gateway in  (request received → upstream request sent)    : {F(Segments.GatewayIn)} µs");
        t.AppendLine(CultureInfo.InvariantCulture, $"  upstream hop (sent → upstream's answer received)           : {F(Segments.UpstreamHop)} µs   (of which inside the upstream's Kestrel: {F(Segments.UpstreamServer)} µs)");
        t.AppendLine(CultureInfo.InvariantCulture, $"  gateway out (answer received → response completed)         : {F(Segments.GatewayOut)} µs");
        t.AppendLine(CultureInfo.InvariantCulture, $"  gateway's own time (in + out)                              : {F(Segments.GatewayOwn)} µs");
        t.AppendLine(CultureInfo.InvariantCulture, $"  client ↔ gateway (outside the gateway's Kestrel)           : {F(Segments.Client)} µs");
        return t.ToString();
    }

    public string ToJson() => JsonSerializer.Serialize(new
    {
        requests = Requests, warmup = Warmup, warmup_jit_quiet = JitQuiet, max_tokens = MaxTokens, instant_engine = InstantEngine,
        through_p50_us = Through.P50, through_p99_us = Through.P99, direct_p50_us = Direct.P50, direct_p99_us = Direct.P99,
        added_p50_us = AddedP50, added_p99_us = AddedP99, paired_difference_p50_us = PairedDifference.P50, paired_difference_p99_us = PairedDifference.P99,
        cost_blocks = CostBlocks, cost_block_requests = CostBlockRequests,
        through_cpu_us = ThroughCost.CpuMicroseconds, direct_cpu_us = DirectCost.CpuMicroseconds, added_cpu_us = AddedCpu,
        through_allocated_bytes = ThroughCost.AllocatedBytes, direct_allocated_bytes = DirectCost.AllocatedBytes, added_allocated_bytes = AddedAllocated,
        segments = new
        {
            requests = Segments.Requests, gateway_in_us = Segments.GatewayIn, upstream_hop_us = Segments.UpstreamHop, upstream_server_us = Segments.UpstreamServer,
            gateway_out_us = Segments.GatewayOut, gateway_own_us = Segments.GatewayOwn, client_us = Segments.Client,
        },
    });
}

/// <summary>
/// The latency a gateway adds, in one run: an upstream Bulwark serving the demo model without its
/// security front (it stands for a vLLM that trusts its network), and a gateway — <c>bulwark serve</c>'s
/// own composition with one upstream pool and no embedded model — with its security front on. Requests
/// alternate, one at a time, between the upstream directly and the gateway (which goes first switching
/// every pair), each on its own kept-alive connection; the gateway's own connection to the upstream is
/// kept alive too. The difference is everything the gateway does: authentication, quotas, audit, the
/// spine, the streaming relay and the extra loopback hop.
/// </summary>
internal static class GatewayComparison
{
    /// <summary>Alternating blocks per side for the CPU and allocation figures (each a quarter of the measured requests).</summary>
    private const int CostBlocks = 6;

    /// <summary>Warm-up pairs without a JIT compilation that end an automatic warm-up.</summary>
    public const int QuietPairs = 500;

    /// <summary>The time without a JIT compilation that ends an automatic warm-up (besides <see cref="QuietPairs"/>).</summary>
    public static readonly TimeSpan QuietTime = TimeSpan.FromSeconds(3);

    /// <summary>The longest an automatic warm-up runs.</summary>
    private static readonly TimeSpan WarmupLimit = TimeSpan.FromMinutes(3);

    /// <param name="warmup">Warm-up pairs; null: at least <paramref name="requests"/> / 10, then until the JIT is quiet.</param>
    public static async Task<GatewayComparisonReport> RunAsync(int requests, int? warmup, int maxTokens, bool instantEngine, ProgressBar? bar, CancellationToken ct)
    {
        var dir = Path.Combine(Path.GetTempPath(), "bulwark-bench-gateway-" + Guid.NewGuid().ToString("N"));
        try
        {
            var data = DataDirectory.Resolve(dir).EnsureCreated();
            var model = ModelSource.EnsureDemo(data);
            using var engine = model.LoadEmbedded(new ServeOptions { KvCacheMemory = "64MiB" });
            IGenerationBackend backend = instantEngine ? new InstantBackend(engine) : engine;
            await using var upstream = await SecurityComparison.StartAsync(backend, Path.Combine(dir, "upstream"), secured: false, ct);

            var settings = SecurityComparison.Settings(Path.Combine(dir, "gateway"));
            settings["Bulwark:Upstreams:bench:Endpoints:0:Url"] = new Uri(upstream.Address, "v1").ToString();
            settings["Bulwark:Upstreams:bench:HealthInterval"] = "00:01:00";
            var builder = BulwarkServer.CreateBuilder([], settings);
            builder.Logging.ClearProviders();
            await using var gateway = await ServeHost.StartAsync(builder, TextWriter.Null, ct: ct);
            var issued = await gateway.App.Services.GetRequiredService<KeyIssuer>().CreateAsync(AlternatingPairs.UnrefusedKey, "bench", ct);

            using var through = SecurityComparison.Client(gateway.Address, issued.Key);
            using var direct = SecurityComparison.Client(upstream.Address, null);
            var body = $$"""{"model":"{{backend.Model.Id}}","messages":[{"role":"user","content":"hi"}],"max_tokens":{{maxTokens}},"temperature":0}""";
            Task<double> Through() => SecurityComparison.SendAsync(through, body, ct);
            Task<double> Direct() => SecurityComparison.SendAsync(direct, body, ct);
            var (warmed, quiet) = warmup is { } fixedWarmup
                ? (fixedWarmup, (bool?)null)
                : await AlternatingPairs.WarmUntilJitQuietAsync(Through, Direct, requests / 10, QuietPairs, QuietTime, WarmupLimit);
            var (throughTimes, directTimes) = await AlternatingPairs.MeasureAsync(Through, Direct, warmup ?? 0, requests, bar);
            var perBlock = Math.Max(1, requests / 4);
            var (throughCost, directCost) = await CostPerRequest.MeasureAsync(Through, Direct, CostBlocks, perBlock);
            GatewaySegments segments;
            using (var timeline = new GatewayTimeline(gateway.Address.Port, upstream.Address.Port))
                segments = await timeline.MeasureAsync(Through, perBlock);
            return new GatewayComparisonReport(requests, warmed, quiet, maxTokens, instantEngine, Percentiles.Of(throughTimes), Percentiles.Of(directTimes),
                Percentiles.Of(throughTimes.Zip(directTimes, (a, b) => a - b)), throughCost, directCost, CostBlocks, perBlock, segments);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }
}
