using System.Diagnostics;
using Bulwark.Bench.Http;
using Bulwark.Server;
using Bulwark.Server.Models;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;

namespace Bulwark.Bench.Soak;

/// <summary>
/// One soak: a <c>bulwark serve</c> process on the demo model in a fresh data directory, with its
/// security front as an operator runs it (an API key for the clients, an admin key for
/// <c>/metrics</c>, in-memory quotas, SQLite audit); <see cref="SoakSettings.Concurrency"/> clients
/// send the <see cref="SoakMix"/> back to back for <see cref="SoakSettings.Duration"/>, and every
/// <see cref="SoakSettings.Interval"/> the server's process and runtime figures are read beside what
/// the clients saw since the last reading. A first reading, before any load, shows the idle server.
/// </summary>
internal static class SoakRun
{
    public static async Task<SoakReport> RunAsync(SoakSettings settings, string cliPath, TextWriter progress, CancellationToken ct)
    {
        var dir = Path.Combine(Path.GetTempPath(), "bulwark-bench-soak-" + Guid.NewGuid().ToString("N"));
        try
        {
            var data = DataDirectory.Resolve(dir).EnsureCreated();
            var model = ModelSource.EnsureDemo(data);
            var (apiKey, adminKey) = await IssueKeysAsync(data, ct);
            string[] flags = settings.KvCacheMemory is { } kv ? ["--kv-cache-memory", kv] : [];
            await using var server = await ServeProcess.StartAsync(cliPath,
                settings.ServeSettings.ToDictionary(p => p.Key.Replace(":", "__", StringComparison.Ordinal), p => p.Value), dir, flags);
            // Connections closed by disconnects are opened again, as clients that come back would.
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = settings.Concurrency })
            {
                BaseAddress = server.Address,
                Timeout = TimeSpan.FromMinutes(2),
            };
            using var metrics = ServerProbe.MetricsClient(server.Address, adminKey);
            var probe = new ServerProbe(server.Id, metrics);
            var client = new SoakClient(http, model.Id, apiKey, settings.MaxTokens, settings.DisconnectAfter);
            var tally = new IntervalTally();

            var samples = new List<SoakSample> { new(0, await probe.ReadAsync(ct), tally.Take()) };
            progress.WriteLine(SoakReport.Header);
            progress.WriteLine(SoakReport.Row(samples[0], null));
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var clock = Stopwatch.StartNew();
            var clients = Enumerable.Range(0, settings.Concurrency)
                .Select(i => Task.Run(() => SendUntilStoppedAsync(client, tally, settings.Mix, new Random(settings.Seed + i), stop.Token)))
                .ToArray();
            try
            {
                using var timer = new PeriodicTimer(settings.Interval);
                var ticks = (int)Math.Ceiling(settings.Duration / settings.Interval);
                for (var tick = 1; tick <= ticks; tick++)
                {
                    await timer.WaitForNextTickAsync(ct);
                    var interval = tally.Take();
                    if (server.HasExited) throw new InvalidOperationException($"bulwark serve exited during the soak; it printed:\n{server.Output}");
                    samples.Add(new SoakSample(clock.Elapsed.TotalSeconds, await probe.ReadAsync(ct), interval));
                    progress.WriteLine(SoakReport.Row(samples[^1], samples[^2].Server));
                }
            }
            finally
            {
                await stop.CancelAsync();
                await Task.WhenAll(clients);
            }
            return new SoakReport(settings, model.Id, server.Id, samples, SoakVerdict.Of(samples, settings.Warmup?.TotalSeconds ?? SoakWarmup.End(samples) ?? double.PositiveInfinity));
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    private static async Task SendUntilStoppedAsync(SoakClient client, IntervalTally tally, SoakMix mix, Random random, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                tally.Add(await client.SendAsync(mix.Pick(random), random, stop));
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return; // the soak is over; the request in flight counts for nothing
            }
        }
    }

    /// <summary>
    /// The clients' key and an admin key for <c>/metrics</c>, made as <c>bulwark keys create</c> makes
    /// them, in the SQLite store and with the HMAC secret <c>serve</c> then opens (so it prints no
    /// first-start admin key).
    /// </summary>
    private static async Task<(string Api, string Admin)> IssueKeysAsync(DataDirectory data, CancellationToken ct)
    {
        await using var storage = await SecurityStorage.OpenAsync(data, new StorageOptions(), ct);
        var keys = new KeyIssuer(storage, new ApiKeyHasher(ServerSecret.Load(null, data.StatePath)), TimeProvider.System);
        var api = await keys.CreateAsync(new KeySpec { Name = "soak" }, "bench soak", ct);
        var admin = await keys.CreateAsync(new KeySpec { Name = "soak-metrics", Tenant = "admin", IsAdmin = true }, "bench soak", ct);
        return (api.Key, admin.Key);
    }
}
