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
internal sealed record GatewayComparisonReport(int Requests, int Warmup, int MaxTokens, bool InstantEngine, Percentiles Through, Percentiles Direct, Percentiles PairedDifference)
    : IComparisonReport
{
    public double AddedP50 => Through.P50 - Direct.P50;
    public double AddedP99 => Through.P99 - Direct.P99;

    public string ToTable()
    {
        string F(double v) => v.ToString("0.0", CultureInfo.InvariantCulture);
        var t = new StringBuilder();
        t.AppendLine(CultureInfo.InvariantCulture, $"through the gateway vs directly to the upstream, {Requests} requests each (after {Warmup} warm-up), max_tokens {MaxTokens}, alternating{(InstantEngine ? ", upstream answering at once (tokenizer only)" : "")}");
        t.AppendLine(CultureInfo.InvariantCulture, $"  through the gateway: p50 {F(Through.P50)} µs   p99 {F(Through.P99)} µs   (API key, in-memory quotas, SQLite audit, streaming relay)");
        t.AppendLine(CultureInfo.InvariantCulture, $"  directly           : p50 {F(Direct.P50)} µs   p99 {F(Direct.P99)} µs");
        t.AppendLine(CultureInfo.InvariantCulture, $"  added by the gateway: p50 {F(AddedP50)} µs   p99 {F(AddedP99)} µs   (target p50 <= 300 µs)");
        t.AppendLine(CultureInfo.InvariantCulture, $"  through − direct within each pair: p50 {F(PairedDifference.P50)} µs   p99 {F(PairedDifference.P99)} µs");
        return t.ToString();
    }

    public string ToJson() => JsonSerializer.Serialize(new
    {
        requests = Requests, warmup = Warmup, max_tokens = MaxTokens, instant_engine = InstantEngine,
        through_p50_us = Through.P50, through_p99_us = Through.P99, direct_p50_us = Direct.P50, direct_p99_us = Direct.P99,
        added_p50_us = AddedP50, added_p99_us = AddedP99, paired_difference_p50_us = PairedDifference.P50, paired_difference_p99_us = PairedDifference.P99,
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
    public static async Task<GatewayComparisonReport> RunAsync(int requests, int warmup, int maxTokens, bool instantEngine, ProgressBar? bar, CancellationToken ct)
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
            var (throughTimes, directTimes) = await AlternatingPairs.MeasureAsync(
                () => SecurityComparison.SendAsync(through, body, ct), () => SecurityComparison.SendAsync(direct, body, ct), warmup, requests, bar);
            return new GatewayComparisonReport(requests, warmup, maxTokens, instantEngine, Percentiles.Of(throughTimes), Percentiles.Of(directTimes),
                Percentiles.Of(throughTimes.Zip(directTimes, (a, b) => a - b)));
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }
}
