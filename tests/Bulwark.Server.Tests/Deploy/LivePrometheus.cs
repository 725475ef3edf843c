using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Bulwark.Bench.Http;
using Bulwark.Server.Tests.Replicas;
using Bulwark.Server.Tests.Security;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Deploy;

/// <summary>
/// A real Prometheus (Debian's) scraping a real <c>bulwark serve</c> every second with the metrics
/// token, configured from deploy/compose/prometheus.yml (only its addresses, paths and intervals
/// changed) and loading deploy/prometheus/rules (evaluated every second). The server gets traffic of
/// every kind the panels show once Prometheus scrapes it, so rates and percentiles have something to read.
/// </summary>
public sealed partial class LivePrometheus : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private readonly string _root = Fixtures.NewTempDirectory("live-prometheus");
    private readonly ConcurrentQueue<string> _prometheusOutput = new();
    private ServeProcess? _serve;
    private Process? _prometheus;

    public HttpClient Prometheus { get; private set; } = null!;

    public string Token { get; } = "metrics-" + Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(20));

    public string PrometheusOutput => string.Join('\n', _prometheusOutput);

    public async Task InitializeAsync()
    {
        var prometheusBinary = DeployTools.Require("prometheus");
        _serve = await TestServe.StartAsync(new Dictionary<string, string> { ["Bulwark__Security__MetricsToken"] = Token }, Directory.CreateDirectory(Path.Combine(_root, "data")).FullName);
        // The first-start admin key is printed after the line ServeProcess waits for.
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(20), () => Task.FromResult(AdminKey().IsMatch(_serve.Output))),
            "serve printed no first-start admin key:\n" + _serve.Output);
        var adminKey = AdminKey().Match(_serve.Output).Value;

        var port = FreePort();
        StartPrometheus(prometheusBinary, port);
        Prometheus = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(30) };
        Assert.True(await Eventually.WithinAsync(Patience, ReadyAsync), "Prometheus did not become ready:\n" + PrometheusOutput);
        Assert.True(await Eventually.WithinAsync(Patience, async () => await ValueAsync("up{job=\"bulwark\"}") == 1),
            "Prometheus did not scrape bulwark serve with the metrics token:\n" + PrometheusOutput);

        // Two rounds of the same traffic with a scrape between and after them: every series the traffic
        // creates is scraped before and after it grows, so rates and percentiles have a value.
        using var admin = _serve.Client(adminKey);
        using var api = _serve.Client(await CreateApiKeyAsync(admin));
        await SendTrafficAsync(api, admin);
        Assert.True(await Eventually.WithinAsync(Patience, async () => await ValueAsync(LastOfARound) >= 1),
            "Prometheus did not scrape the first round of traffic:\n" + PrometheusOutput);
        await SendTrafficAsync(api, admin);
        Assert.True(await Eventually.WithinAsync(Patience, async () => await ValueAsync(LastOfARound) >= 2),
            "Prometheus did not scrape the second round of traffic:\n" + PrometheusOutput);
        Assert.True(await Eventually.WithinAsync(Patience, async () => (await RuleHealthAsync()).All(r => r.Health != "unknown")),
            "Prometheus did not evaluate every rule:\n" + PrometheusOutput);
    }

    public async Task DisposeAsync()
    {
        Prometheus?.Dispose();
        if (_prometheus is { } p)
        {
            try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            p.WaitForExit(10_000);
            p.Dispose();
        }
        if (_serve is not null) await _serve.DisposeAsync();
        try { Directory.Delete(_root, true); } catch (IOException) { } // a process may still be letting go of a file
    }

    private async Task<bool> ReadyAsync()
    {
        Assert.False(_prometheus!.HasExited, "Prometheus exited:\n" + PrometheusOutput);
        try
        {
            using var response = await Prometheus.GetAsync("-/ready");
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false; // not listening yet
        }
    }

    /// <summary>Evaluates an instant query; the whole response, or the error Prometheus gave.</summary>
    public async Task<(bool Ok, JsonElement Result, string Error)> QueryAsync(string query)
    {
        using var response = await Prometheus.GetAsync("api/v1/query?query=" + Uri.EscapeDataString(query));
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return body.GetProperty("status").GetString() == "success"
            ? (true, body.GetProperty("data").GetProperty("result"), "")
            : (false, default, $"{body.GetProperty("errorType").GetString()}: {body.GetProperty("error").GetString()}");
    }

    /// <summary>The first sample's value of a query's result, or null when the result is empty or not a number.</summary>
    public async Task<double?> ValueAsync(string query)
    {
        var (ok, result, _) = await QueryAsync(query);
        if (!ok || result.GetArrayLength() == 0) return null;
        return double.TryParse(result[0].GetProperty("value")[1].GetString(), System.Globalization.CultureInfo.InvariantCulture, out var v) ? v : null;
    }

    /// <summary>Every loaded rule's name, health and last error, from /api/v1/rules.</summary>
    public async Task<List<(string Name, string Health, string Error)>> RuleHealthAsync()
    {
        var body = await Prometheus.GetFromJsonAsync<JsonElement>("api/v1/rules");
        return [.. body.GetProperty("data").GetProperty("groups").EnumerateArray()
            .SelectMany(g => g.GetProperty("rules").EnumerateArray())
            .Select(r => (r.GetProperty("name").GetString()!, r.GetProperty("health").GetString()!, r.TryGetProperty("lastError", out var e) ? e.GetString() ?? "" : ""))];
    }

    private void StartPrometheus(string binary, int port)
    {
        var tokenFile = Path.Combine(_root, "metrics_token");
        File.WriteAllText(tokenFile, Token);
        // The rules as shipped, evaluated every second instead of every 30 s.
        var rules = Directory.CreateDirectory(Path.Combine(_root, "rules")).FullName;
        foreach (var file in RuleFiles.Paths)
            File.WriteAllText(Path.Combine(rules, Path.GetFileName(file)), File.ReadAllText(file).Replace("interval: 30s", "interval: 1s"));
        var config = Replace(File.ReadAllText(DeployTools.PathOf("compose", "prometheus.yml")),
            ("scrape_interval: 15s", "scrape_interval: 1s"),
            ("evaluation_interval: 30s", "evaluation_interval: 1s"),
            ("/run/secrets/metrics_token", tokenFile),
            ("/etc/prometheus/rules/", rules + "/"),
            ("[bulwark-a:8000, bulwark-b:8000]", $"[{_serve!.Address.Authority}]"),
            ("[localhost:9090]", $"[127.0.0.1:{port}]"),
            ("[alertmanager:9093]", "[127.0.0.1:9]")); // the discard port: no Alertmanager in this test
        var configFile = Path.Combine(_root, "prometheus.yml");
        File.WriteAllText(configFile, config);

        var start = new ProcessStartInfo(binary,
            [$"--config.file={configFile}", $"--storage.tsdb.path={Path.Combine(_root, "tsdb")}", $"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _root,
        };
        _prometheus = new Process { StartInfo = start };
        _prometheus.OutputDataReceived += (_, e) => { if (e.Data is not null) _prometheusOutput.Enqueue(e.Data); };
        _prometheus.ErrorDataReceived += (_, e) => { if (e.Data is not null) _prometheusOutput.Enqueue(e.Data); };
        _prometheus.Start();
        _prometheus.BeginOutputReadLine();
        _prometheus.BeginErrorReadLine();
    }

    /// <summary>The series of the last request of a round of traffic.</summary>
    private const string LastOfARound = "sum(bulwark_http_requests_total{route=\"/admin/resume\"})";

    private static async Task<string> CreateApiKeyAsync(HttpClient admin)
    {
        using var created = await admin.PostAsync("admin/keys", Json(new { name = "deploy-test" }));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        return (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetString()!;
    }

    /// <summary>Chat and text completions (some streamed), a tokenize, refused requests and two admin actions.</summary>
    private async Task SendTrafficAsync(HttpClient api, HttpClient admin)
    {
        for (var i = 0; i < 4; i++)
        {
            using var chat = await api.PostAsync("v1/chat/completions", Json(new
            {
                model = "bulwark-demo",
                messages = new[] { new { role = "user", content = $"Hello number {i}" } },
                max_tokens = 8,
                stream = i % 2 == 1,
            }));
            Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
            await chat.Content.ReadAsStringAsync();
        }
        using (var text = await api.PostAsync("v1/completions", Json(new { model = "bulwark-demo", prompt = "Once upon a time", max_tokens = 8 })))
            Assert.Equal(HttpStatusCode.OK, text.StatusCode);
        using (var tokenize = await api.PostAsync("tokenize", Json(new { model = "bulwark-demo", prompt = "count these" })))
            Assert.Equal(HttpStatusCode.OK, tokenize.StatusCode);
        using (var stranger = _serve!.Client("bwk_aaaaaaaaaaaa_" + new string('a', 52)))
            Assert.Equal(HttpStatusCode.Unauthorized, (await stranger.GetAsync("v1/models")).StatusCode);
        using (var anonymous = _serve.Client())
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsync("v1/chat/completions", Json(new { }))).StatusCode);
        // Admin actions, for the change-window alert's route pattern; the replica is back in service after.
        using (var isolate = await admin.PostAsync("admin/isolate", Json(new { reason = "deploy test" })))
            Assert.Equal(HttpStatusCode.OK, isolate.StatusCode);
        using (var resume = await admin.PostAsync("admin/resume", Json(new { })))
            Assert.Equal(HttpStatusCode.OK, resume.StatusCode);
    }

    private static StringContent Json(object body) => new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    private static string Replace(string text, params (string From, string To)[] replacements)
    {
        foreach (var (from, to) in replacements)
        {
            if (!text.Contains(from, StringComparison.Ordinal)) throw new InvalidOperationException($"deploy/compose/prometheus.yml no longer contains '{from}': update this test");
            text = text.Replace(from, to, StringComparison.Ordinal);
        }
        return text;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [GeneratedRegex("bwa_[a-z2-7]{12}_[a-z2-7]{52}")]
    private static partial Regex AdminKey();
}
