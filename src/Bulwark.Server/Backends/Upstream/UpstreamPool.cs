using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Bulwark.Server.Redaction;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Backends.Upstream;

/// <summary>
/// A pool of upstream engines: one HTTP client (TLS with the system's trust or a configured CA, an
/// optional client certificate), the pool's credential (read from an environment variable or a file,
/// registered with the secret redactor, never logged), its endpoints, and the balancer: among the
/// endpoints that serve a model and are available (healthy, circuit not open, below their bulkhead),
/// the one with the fewest requests in flight (plus those waiting in its own queue, when the pool reads
/// a queue metric) per unit of weight. Active health checks
/// (<c>GET {base}/models</c>) run in the background and also discover the models each endpoint lists.
/// </summary>
public sealed class UpstreamPool : IAsyncDisposable
{
    private readonly HttpClient _http;
    private readonly string? _apiKey;
    private readonly string? _authorization;
    private readonly string? _metricsKey;
    private readonly UpstreamMetrics _metrics;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private Task? _health;
    private int _turn;

    public UpstreamPool(string name, UpstreamPoolOptions options, UpstreamMetrics metrics, ILogger log)
    {
        Name = name;
        Options = options;
        Protocol = IUpstreamProtocol.For(options.Protocol);
        _metrics = metrics;
        _log = log;
        _apiKey = ReadKey(options);
        SecretRedactor.AddKnownSecret(_apiKey);
        _authorization = _apiKey is not null && _apiKey.All(c => c is > ' ' and < (char)0x7f) ? "Bearer " + _apiKey : null;
        _metricsKey = options.MetricsKeyEnv is { } metricsEnv ? Environment.GetEnvironmentVariable(metricsEnv)?.Trim() : _apiKey;
        SecretRedactor.AddKnownSecret(_metricsKey);
        Endpoints = options.Endpoints.Select(e => new UpstreamEndpoint(name, e, options, metrics)).ToArray();
        Encoders = options.Tokenizers.ToDictionary(t => t.Key, t => LoadEncoder(name, t.Key, t.Value), StringComparer.Ordinal);
        _http = new HttpClient(Handler(options), disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
        metrics.Observe(this);
    }

    public string Name { get; }

    public UpstreamPoolOptions Options { get; }

    internal IUpstreamProtocol Protocol { get; }

    /// <summary>Served name → its prompt encoder, for the models with a configured tokenizer.</summary>
    public IReadOnlyDictionary<string, PromptEncoder> Encoders { get; }

    public IReadOnlyList<UpstreamEndpoint> Endpoints { get; }

    internal HttpClient Http => _http;

    /// <summary>Served model names: the configured list, or every model some endpoint listed at its last check.</summary>
    public IReadOnlyList<string> ServedModels => Options.Models.Count > 0
        ? Options.Models
        : Endpoints.SelectMany(e => e.Models.Keys).Select(Served).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();

    /// <summary>The upstream's name of a served model (<see cref="UpstreamPoolOptions.Rename"/>).</summary>
    public string UpstreamName(string served) => Options.Rename.GetValueOrDefault(served, served);

    /// <summary>The served name of a model an endpoint lists (the reverse of the rename).</summary>
    public string Served(string upstream) =>
        Options.Rename.FirstOrDefault(r => string.Equals(r.Value, upstream, StringComparison.Ordinal)).Key ?? upstream;

    /// <summary>The context length the endpoints report for a served model (or the configured one; 0: unknown).</summary>
    public int ContextLength(string served)
    {
        var upstream = UpstreamName(served);
        var reported = Endpoints.Select(e => e.Models.GetValueOrDefault(upstream)).Where(n => n > 0).DefaultIfEmpty(0).Min();
        return reported > 0 ? reported : Options.ContextLength;
    }

    /// <summary>
    /// The endpoint to try next for <paramref name="served"/>: available, serving the model, not in
    /// <paramref name="tried"/> (unless nothing else is left), least requests in flight per weight;
    /// ties go round-robin. Null when none can take it.
    /// </summary>
    public UpstreamEndpoint? Pick(string served, IReadOnlySet<UpstreamEndpoint> tried)
    {
        var upstream = UpstreamName(served);
        UpstreamEndpoint? best = null, bestTried = null;
        double bestLoad = double.MaxValue, bestTriedLoad = double.MaxValue;
        var start = Interlocked.Increment(ref _turn);
        for (var k = 0; k < Endpoints.Count; k++)
        {
            var e = Endpoints[(int)((uint)(start + k) % (uint)Endpoints.Count)];
            if (!e.Available || e.InFlight >= Options.MaxInFlightPerEndpoint) continue;
            if (Options.Models.Count == 0 && !e.Models.ContainsKey(upstream)) continue;
            var load = (e.InFlight + e.Queued + 1.0) / e.Weight;
            if (tried.Contains(e)) { if (load < bestTriedLoad) (bestTried, bestTriedLoad) = (e, load); }
            else if (load < bestLoad) (best, bestLoad) = (e, load);
        }
        return best ?? bestTried;
    }

    /// <summary>Adds the pool's credential to a request to <paramref name="endpoint"/>.</summary>
    internal HttpRequestMessage Request(HttpMethod method, UpstreamEndpoint endpoint, string path)
    {
        var request = new HttpRequestMessage(method, endpoint.UriOf(path));
        // The header's text is made once: nothing to parse or format per request. A key with characters a token
        // cannot hold goes through the typed header, which refuses it as before.
        if (_authorization is not null) request.Headers.TryAddWithoutValidation("Authorization", _authorization);
        else if (_apiKey is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _apiKey);
        return request;
    }

    /// <summary>Checks every endpoint once now (start-up discovery), then keeps checking every <see cref="UpstreamPoolOptions.HealthInterval"/>.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        await CheckAllAsync(ct);
        if (Options.HealthInterval > TimeSpan.Zero) _health = Task.Run(() => HealthLoopAsync(_stop.Token), CancellationToken.None);
    }

    /// <summary>Marks an endpoint down at once (a failure mid-stream); the next successful health check brings it back.</summary>
    internal void Eject(UpstreamEndpoint endpoint)
    {
        if (endpoint.SetHealth(false)) _metrics.Ejected(endpoint);
    }

    private async Task HealthLoopAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(Options.HealthInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(ct)) await CheckAllAsync(ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
    }

    /// <summary>Raised after every round of health checks (new models may have appeared).</summary>
    public event Action? Checked;

    private async Task CheckAllAsync(CancellationToken ct)
    {
        await Task.WhenAll(Endpoints.Select(e => CheckAsync(e, ct)));
        Checked?.Invoke();
    }

    private async Task CheckAsync(UpstreamEndpoint endpoint, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(Options.ConnectTimeout + TimeSpan.FromSeconds(5));
        try
        {
            using var request = Request(HttpMethod.Get, endpoint, Protocol.HealthPath);
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            if (!response.IsSuccessStatusCode) throw new HttpRequestException($"HTTP {(int)response.StatusCode}");
            if (!Protocol.Discovers)
            {
                endpoint.SetHealth(true);
                if (Options.QueueMetric is { } queue) endpoint.SetQueued(await QueuedAsync(endpoint, queue, timeout.Token));
                return;
            }
            await using var body = await response.Content.ReadAsStreamAsync(timeout.Token);
            using var json = await JsonDocument.ParseAsync(new LimitedStream(body, 4 << 20), default, timeout.Token);
            var models = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var m in json.RootElement.GetProperty("data").EnumerateArray())
            {
                var id = m.GetProperty("id").GetString();
                if (string.IsNullOrEmpty(id) || id.Length > 256) continue;
                models[id] = m.TryGetProperty("max_model_len", out var len) && len.TryGetInt32(out var n) && n > 0 ? n : 0;
                if (models.Count >= 1024) break;
            }
            endpoint.SetHealth(true, models);
            if (Options.QueueMetric is { } metric) endpoint.SetQueued(await QueuedAsync(endpoint, metric, timeout.Token));
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or JsonException or KeyNotFoundException or InvalidOperationException or IOException)
        {
            if (ct.IsCancellationRequested) return;
            if (endpoint.SetHealth(false))
            {
                _metrics.Ejected(endpoint);
                // The message may quote a URL or a status; SecretRedactor runs on every log line anyway.
                _log.LogWarning("upstream {Pool} endpoint {Endpoint} failed its health check: {Error}", Name, endpoint.Name, e.Message);
            }
        }
    }

    /// <summary>
    /// The sum of the queue gauge's series on the endpoint's Prometheus page (0 when it is not there). A page
    /// that cannot be read keeps the last figure: the metric steers the balancer, it does not judge health.
    /// </summary>
    private async Task<int> QueuedAsync(UpstreamEndpoint endpoint, string metric, CancellationToken ct)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(endpoint.BaseUrl, Options.MetricsPath));
            if (_metricsKey is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _metricsKey);
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
            if (!response.IsSuccessStatusCode) return endpoint.Queued;
            using var reader = new StreamReader(new LimitedStream(await response.Content.ReadAsStreamAsync(ct), 8 << 20));
            return (int)Math.Min(int.MaxValue, PrometheusGauge.Sum(await reader.ReadToEndAsync(ct), metric));
        }
        catch (Exception e) when (e is HttpRequestException or IOException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            return endpoint.Queued;
        }
    }

    private static PromptEncoder LoadEncoder(string pool, string served, string path)
    {
        try
        {
            var (tokenizer, template, templateError) = Bulwark.Engine.Serving.EngineFactory.LoadPrompting(path);
            if (templateError is not null)
                throw new ServerConfigurationException([$"{UpstreamPoolOptions.Section}:{pool}:Tokenizers:{served}: the chat template at '{path}' cannot be used ({templateError})."]);
            return new PromptEncoder(tokenizer, template, served);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or Bulwark.Engine.Formats.ModelFormatException or NotSupportedException)
        {
            throw new ServerConfigurationException([$"{UpstreamPoolOptions.Section}:{pool}:Tokenizers:{served}: cannot read a tokenizer at '{path}': {e.Message}"]);
        }
    }

    private static string? ReadKey(UpstreamPoolOptions options)
    {
        if (options.ApiKeyEnv is { } env) return Environment.GetEnvironmentVariable(env)?.Trim() is { Length: > 0 } key ? key : null;
        if (options.ApiKeyFile is { } file) return File.ReadLines(file).FirstOrDefault()?.Trim() is { Length: > 0 } line ? line : null;
        return null;
    }

    private static SocketsHttpHandler Handler(UpstreamPoolOptions options)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = options.ConnectTimeout,
            // New DNS answers reach long-lived pools (Kubernetes services move).
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            MaxConnectionsPerServer = Math.Max(options.MaxInFlightPerEndpoint, 2),
            AutomaticDecompression = System.Net.DecompressionMethods.None,
            AllowAutoRedirect = false,
            // Upstreams set no cookies worth keeping, and a shared jar would mix clients' sessions; skipping it saves work per request.
            UseCookies = false,
            // No W3C trace headers are invented here (tracing is a stage of its own); none are copied from clients either.
            ActivityHeadersPropagator = null,
        };
        if (options.CaFile is { } caFile)
        {
            var trusted = new X509Certificate2Collection();
            trusted.ImportFromPemFile(caFile);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            {
                if (errors == SslPolicyErrors.None) return true;
                if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != 0) return false;
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.AddRange(trusted);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(new X509Certificate2(certificate));
            };
        }
        if (options.ClientCertificateFile is { } certFile)
            handler.SslOptions.ClientCertificates = [X509Certificate2.CreateFromPemFile(certFile, options.ClientKeyFile)];
        return handler;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_health is not null) await _health;
        _http.Dispose();
        _stop.Dispose();
    }
}
