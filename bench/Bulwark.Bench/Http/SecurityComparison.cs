using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net;
using System.Text.Json;
using System.Text;
using Bulwark.Bench.Security;
using Bulwark.Cli.Terminal;
using Bulwark.Server.Backends;
using Bulwark.Server.Hosting;
using Bulwark.Server.Models;
using Bulwark.Server.Security;
using Bulwark.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bulwark.Bench.Http;

/// <summary>What <c>bench/run serve --compare-security</c> measured: client-side latency of the same request through each server, in µs.</summary>
/// <param name="PairedDifference">Percentiles of on − off within each pair: steadier than the difference of p50s when the engine's own latency is noisy.</param>
internal sealed record SecurityComparisonReport(int Requests, int Warmup, int MaxTokens, bool InstantEngine, Percentiles On, Percentiles Off, Percentiles PairedDifference, long Audited)
    : IComparisonReport
{
    public double OverheadP50 => On.P50 - Off.P50;
    public double OverheadP99 => On.P99 - Off.P99;

    public string ToTable()
    {
        string F(double v) => v.ToString("0.0", CultureInfo.InvariantCulture);
        var t = new StringBuilder();
        t.AppendLine(CultureInfo.InvariantCulture, $"security on vs off over HTTP, {Requests} requests each (after {Warmup} warm-up), max_tokens {MaxTokens}, alternating, same engine{(InstantEngine ? " (instant stand-in: tokenizer only, no generation)" : "")}");
        t.AppendLine(CultureInfo.InvariantCulture, $"  security on : p50 {F(On.P50)} µs   p99 {F(On.P99)} µs   (API key, in-memory quotas, SQLite audit)");
        t.AppendLine(CultureInfo.InvariantCulture, $"  security off: p50 {F(Off.P50)} µs   p99 {F(Off.P99)} µs");
        t.AppendLine(CultureInfo.InvariantCulture, $"  overhead    : p50 {F(OverheadP50)} µs   p99 {F(OverheadP99)} µs   (target p50 <= 100 µs)");
        t.AppendLine(CultureInfo.InvariantCulture, $"  on − off within each pair: p50 {F(PairedDifference.P50)} µs");
        t.AppendLine(CultureInfo.InvariantCulture, $"  audit records written for the key: {Audited}");
        return t.ToString();
    }

    public string ToJson() => JsonSerializer.Serialize(new
    {
        requests = Requests, warmup = Warmup, max_tokens = MaxTokens, instant_engine = InstantEngine,
        on_p50_us = On.P50, on_p99_us = On.P99, off_p50_us = Off.P50, off_p99_us = Off.P99,
        overhead_p50_us = OverheadP50, overhead_p99_us = OverheadP99, paired_difference_p50_us = PairedDifference.P50, audited = Audited,
    });
}

/// <summary>
/// The overhead of auth + quotas + audit as a client sees it, in one run: two Kestrel servers in this
/// process on 127.0.0.1, built by <see cref="BulwarkServer"/> around ONE engine serving the demo model,
/// one with the security front (API key, in-memory quotas, SQLite audit in a temporary data
/// directory) and one without it (the bare composition tests use; <c>serve</c> has no way to turn
/// security off). Requests alternate between them one at a time, which goes first switching every
/// pair, so both see the same machine and engine state. Output redaction is off on both, so the
/// difference is the security front alone.
/// </summary>
internal static class SecurityComparison
{
    /// <param name="instantEngine">Serve through <see cref="InstantBackend"/> instead of generating, to take the engine's jitter out.</param>
    public static async Task<SecurityComparisonReport> RunAsync(int requests, int warmup, int maxTokens, bool instantEngine, ProgressBar? bar, CancellationToken ct)
    {
        var dir = Path.Combine(Path.GetTempPath(), "bulwark-bench-compare-" + Guid.NewGuid().ToString("N"));
        try
        {
            var data = DataDirectory.Resolve(dir).EnsureCreated();
            var model = ModelSource.EnsureDemo(data);
            using var engine = model.LoadEmbedded(new ServeOptions { KvCacheMemory = "64MiB" });
            IGenerationBackend backend = instantEngine ? new InstantBackend(engine) : engine;
            await using var on = await StartAsync(backend, Path.Combine(dir, "on"), secured: true, ct);
            await using var off = await StartAsync(backend, Path.Combine(dir, "off"), secured: false, ct);
            var issued = await on.App.Services.GetRequiredService<KeyIssuer>().CreateAsync(AlternatingPairs.UnrefusedKey, "bench", ct);
            using var onClient = Client(on.Address, issued.Key);
            using var offClient = Client(off.Address, null);
            var body = $$"""{"model":"{{backend.Model.Id}}","messages":[{"role":"user","content":"hi"}],"max_tokens":{{maxTokens}},"temperature":0}""";
            var (onTimes, offTimes) = await AlternatingPairs.MeasureAsync(() => SendAsync(onClient, body, ct), () => SendAsync(offClient, body, ct), warmup, requests, bar);
            var services = on.App.Services;
            await services.GetRequiredService<Bulwark.Server.Audit.AuditWriter>().FlushAsync(ct);
            var usage = await services.GetRequiredService<Bulwark.Server.Storage.SecurityStorage>().Audit
                .UsageAsync(issued.Record.Id, DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), ct);
            return new SecurityComparisonReport(requests, warmup, maxTokens, instantEngine, Percentiles.Of(onTimes), Percentiles.Of(offTimes),
                Percentiles.Of(onTimes.Zip(offTimes, (a, b) => a - b)), usage?.Requests ?? 0);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    internal sealed record InProcessServer(WebApplication App, Uri Address) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await App.StopAsync();
            await App.DisposeAsync();
        }
    }

    internal static async Task<InProcessServer> StartAsync(IGenerationBackend backend, string dataDir, bool secured, CancellationToken ct)
    {
        var builder = BulwarkServer.CreateBuilder([], Settings(dataDir));
        builder.Logging.ClearProviders();
        var app = BulwarkServer.Build(builder, backend, secured);
        await app.StartAsync(ct);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new InProcessServer(app, new Uri(address.TrimEnd('/') + "/"));
    }

    /// <summary>What both comparisons hold fixed, whatever the environment says: loopback, a free port, quotas in memory, audit in SQLite, no output redaction and no input guard (their own benchmarks cover them).</summary>
    internal static Dictionary<string, string?> Settings(string dataDir) => new()
    {
        ["Bulwark:Server:Host"] = "127.0.0.1",
        ["Bulwark:Server:Port"] = "0",
        [ServerSettings.DataDirKey] = dataDir,
        [ServerSettings.RedactSecretsKey] = "false",
        ["Bulwark:Quotas:Redis"] = "",
        ["Bulwark:Storage:Postgres"] = "",
        ["Bulwark:Guardrails:Input:Policy"] = "off",
    };

    internal static HttpClient Client(Uri address, string? key)
    {
        // One kept-alive connection per server: connection set-up is not part of either path.
        var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1 }) { BaseAddress = address, Timeout = TimeSpan.FromSeconds(60) };
        if (key is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    internal static async Task<double> SendAsync(HttpClient client, string body, CancellationToken ct)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        var started = Stopwatch.GetTimestamp();
        using var response = await client.PostAsync("v1/chat/completions", content, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        var elapsed = Stopwatch.GetElapsedTime(started).TotalMicroseconds;
        if (response.StatusCode != HttpStatusCode.OK)
            throw new InvalidOperationException($"a benchmark request to {client.BaseAddress} answered {(int)response.StatusCode}: {(text.Length > 300 ? text[..300] : text)}");
        return elapsed;
    }
}
