namespace Bulwark.Server.Backends.Upstream;

/// <summary>
/// One pool of upstream engines (configuration <c>Bulwark:Upstreams:&lt;pool&gt;</c>): endpoints that
/// speak the same protocol with the same credential. A model is served by the endpoints of the pool
/// that list it (<c>GET /v1/models</c>), or by all of them when <see cref="Models"/> names it.
/// </summary>
public sealed class UpstreamPoolOptions
{
    public const string Section = "Bulwark:Upstreams";

    /// <summary>
    /// <c>openai</c>: an OpenAI-compatible <c>/v1</c> base URL (vLLM, SGLang, TGI's Messages API, llama.cpp's
    /// server, Ollama, another Bulwark). <c>tgi</c>: TGI's native <c>/generate</c> protocol at the server's root
    /// (text prompts, one choice; the models must be listed, TGI does not).
    /// </summary>
    public string Protocol { get; set; } = "openai";

    public List<UpstreamEndpointOptions> Endpoints { get; set; } = [];

    /// <summary>Environment variable holding the bearer key the upstream expects; never a value in configuration or on the command line.</summary>
    public string? ApiKeyEnv { get; set; }

    /// <summary>File holding the bearer key (its first line), e.g. a mounted Kubernetes secret.</summary>
    public string? ApiKeyFile { get; set; }

    /// <summary>Served model names; empty: every model the endpoints list.</summary>
    public List<string> Models { get; set; } = [];

    /// <summary>Served name → the name the upstream knows the model by.</summary>
    public Dictionary<string, string> Rename { get; set; } = [];

    /// <summary>Served name → other served models to try, in order, when none of its endpoints can take a request.</summary>
    public Dictionary<string, List<string>> Fallbacks { get; set; } = [];

    /// <summary>
    /// Served name → the model's tokenizer (a GGUF file, a Hugging Face folder, tokenizer.json or
    /// tokenizer.model; its chat template comes from the same place): prompts of that model are then
    /// counted exactly (and <c>/tokenize</c> works for it) instead of estimated.
    /// </summary>
    public Dictionary<string, string> Tokenizers { get; set; } = [];

    /// <summary>Context length to assume when the upstream does not say (its <c>max_model_len</c>); 0: unknown, the upstream judges.</summary>
    public int ContextLength { get; set; }

    /// <summary>Opening a TCP (and TLS) connection to an endpoint.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>One attempt, from sending the request to the response's first byte (headers).</summary>
    public TimeSpan FirstByteTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Longest silence between two chunks of a streamed response.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Every attempt of one request together, streaming included.</summary>
    public TimeSpan TotalTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Attempts per request (first try + retries), each on the least loaded endpoint still available; retried only before the client saw a byte.</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>First retry delay; each later one doubles, with jitter.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Requests one endpoint may have in flight (the bulkhead); more go to another endpoint or wait in admission.</summary>
    public int MaxInFlightPerEndpoint { get; set; } = 64;

    /// <summary>The circuit of an endpoint opens when at least this fraction of its recent requests failed…</summary>
    public double BreakerFailureRatio { get; set; } = 0.5;

    /// <summary>…among at least this many…</summary>
    public int BreakerMinimumThroughput { get; set; } = 5;

    /// <summary>…within this window.</summary>
    public TimeSpan BreakerSamplingDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long an open circuit refuses before one probe request is let through (half-open).</summary>
    public TimeSpan BreakDuration { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Active health checks: <c>GET {base}/models</c> on every endpoint this often (0: off).</summary>
    public TimeSpan HealthInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A Prometheus gauge of the upstream's own queue, read at every health check and added to the
    /// balancer's count of in-flight requests: <c>vllm:num_requests_waiting</c> for vLLM,
    /// <c>bulwark_admission_waiting</c> for Bulwark. Empty: balance on in-flight requests alone.
    /// </summary>
    public string? QueueMetric { get; set; }

    /// <summary>Where the metrics are, relative to the endpoint's host (default <c>/metrics</c>).</summary>
    public string MetricsPath { get; set; } = "/metrics";

    /// <summary>Environment variable holding a bearer token for the metrics (Bulwark's metrics token); empty: the pool's key.</summary>
    public string? MetricsKeyEnv { get; set; }

    /// <summary>PEM file of a CA to trust besides the system's (upstreams with a private CA).</summary>
    public string? CaFile { get; set; }

    /// <summary>PEM certificate and key to present to upstreams that require mutual TLS.</summary>
    public string? ClientCertificateFile { get; set; }

    public string? ClientKeyFile { get; set; }

    /// <summary>Most bytes read from one upstream response (a stream included); more is treated as a failure of the upstream.</summary>
    public long MaxResponseBytes { get; set; } = 64L * 1024 * 1024;

    public IEnumerable<string> Validate(string name)
    {
        var at = $"{Section}:{name}";
        if (Protocol is not ("openai" or "tgi"))
            yield return $"{at}:Protocol must be openai (an OpenAI-compatible /v1 API) or tgi (TGI's /generate); got '{Protocol}'.";
        if (Protocol == "tgi" && Models.Count != 1)
            yield return $"{at}:Models must name the one model a TGI pool serves (TGI's protocol does not list it); got {Models.Count}.";
        if (Endpoints.Count is 0 or > 256) yield return $"{at}:Endpoints must list between 1 and 256 endpoints; got {Endpoints.Count}.";
        for (var i = 0; i < Endpoints.Count; i++)
            foreach (var problem in Endpoints[i].Validate($"{at}:Endpoints:{i}")) yield return problem;
        if (ApiKeyEnv is not null && ApiKeyFile is not null) yield return $"{at}: set ApiKeyEnv or ApiKeyFile, not both.";
        if (ApiKeyEnv is { } env && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(env)))
            yield return $"{at}:ApiKeyEnv names the environment variable {env}, which is not set.";
        if (ApiKeyFile is { } file && !File.Exists(file)) yield return $"{at}:ApiKeyFile {file} does not exist.";
        if (ContextLength < 0) yield return $"{at}:ContextLength must be 0 (unknown) or more; got {ContextLength}.";
        foreach (var (key, value) in Times())
            if (value <= TimeSpan.Zero || value > TimeSpan.FromHours(24)) yield return $"{at}:{key} must be more than 0 and at most 1.00:00:00; got {value}.";
        if (MaxAttempts is < 1 or > 10) yield return $"{at}:MaxAttempts must be between 1 and 10; got {MaxAttempts}.";
        if (RetryDelay < TimeSpan.Zero || RetryDelay > TimeSpan.FromMinutes(1)) yield return $"{at}:RetryDelay must be between 0 and 00:01:00; got {RetryDelay}.";
        if (MaxInFlightPerEndpoint is < 1 or > 100_000) yield return $"{at}:MaxInFlightPerEndpoint must be between 1 and 100000; got {MaxInFlightPerEndpoint}.";
        if (BreakerFailureRatio is <= 0 or > 1) yield return $"{at}:BreakerFailureRatio must be more than 0 and at most 1; got {BreakerFailureRatio}.";
        if (BreakerMinimumThroughput is < 2 or > 10_000) yield return $"{at}:BreakerMinimumThroughput must be between 2 and 10000; got {BreakerMinimumThroughput}.";
        if (BreakerSamplingDuration < TimeSpan.FromMilliseconds(500) || BreakerSamplingDuration > TimeSpan.FromDays(1))
            yield return $"{at}:BreakerSamplingDuration must be between 00:00:00.5 and 1.00:00:00; got {BreakerSamplingDuration}.";
        if (BreakDuration < TimeSpan.FromMilliseconds(500) || BreakDuration > TimeSpan.FromDays(1))
            yield return $"{at}:BreakDuration must be between 00:00:00.5 and 1.00:00:00; got {BreakDuration}.";
        if (HealthInterval < TimeSpan.Zero || HealthInterval > TimeSpan.FromHours(1)) yield return $"{at}:HealthInterval must be between 0 (off) and 01:00:00; got {HealthInterval}.";
        if (MaxResponseBytes is < 1024 or > 1L << 34) yield return $"{at}:MaxResponseBytes must be between 1024 and 17179869184; got {MaxResponseBytes}.";
        if (QueueMetric is { } metric && (metric.Length is 0 or > 200 || !metric.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or ':')))
            yield return $"{at}:QueueMetric must be a Prometheus metric name such as vllm:num_requests_waiting; got '{metric}'.";
        if (!MetricsPath.StartsWith('/') || MetricsPath.Contains("..", StringComparison.Ordinal) || MetricsPath.Contains('?'))
            yield return $"{at}:MetricsPath must be an absolute path such as /metrics; got '{MetricsPath}'.";
        if (MetricsKeyEnv is { } metricsEnv && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(metricsEnv)))
            yield return $"{at}:MetricsKeyEnv names the environment variable {metricsEnv}, which is not set.";
        if (CaFile is { } ca && !File.Exists(ca)) yield return $"{at}:CaFile {ca} does not exist.";
        if ((ClientCertificateFile is null) != (ClientKeyFile is null)) yield return $"{at}: set both ClientCertificateFile and ClientKeyFile, or neither.";
        foreach (var (served, path) in Tokenizers)
            if (!File.Exists(path) && !Directory.Exists(path)) yield return $"{at}:Tokenizers:{served}: no file or folder at '{path}'.";
        foreach (var (served, fallbacks) in Fallbacks)
            if (fallbacks.Contains(served, StringComparer.Ordinal)) yield return $"{at}:Fallbacks:{served} must not name the model itself.";
    }

    private IEnumerable<(string, TimeSpan)> Times() =>
        [("ConnectTimeout", ConnectTimeout), ("FirstByteTimeout", FirstByteTimeout), ("IdleTimeout", IdleTimeout), ("TotalTimeout", TotalTimeout)];
}

/// <summary>One engine of a pool: its OpenAI-compatible base URL (ending in <c>/v1</c>) and its share of the traffic.</summary>
public sealed class UpstreamEndpointOptions
{
    public string Url { get; set; } = "";

    /// <summary>Relative capacity: an endpoint of weight 2 takes twice the requests in flight of one of weight 1.</summary>
    public int Weight { get; set; } = 1;

    public IEnumerable<string> Validate(string at)
    {
        if (!Uri.TryCreate(Url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            yield return $"{at}:Url must be an http or https URL such as http://10.0.0.5:8000/v1; got '{Url}'.";
        else if (!string.IsNullOrEmpty(uri.UserInfo) || !string.IsNullOrEmpty(uri.Query))
            yield return $"{at}:Url must not carry credentials or a query string (use ApiKeyEnv or ApiKeyFile).";
        if (Weight is < 1 or > 1000) yield return $"{at}:Weight must be between 1 and 1000; got {Weight}.";
    }
}
