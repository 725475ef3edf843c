using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace Bulwark.Server.Backends.Upstream;

/// <summary>
/// One engine of a pool as the balancer sees it: its base URL and weight, the requests it has in
/// flight, what its last health check said (up, and the models it lists), and the resilience
/// pipeline every attempt on it runs through — a circuit breaker that opens on a failure ratio and
/// probes half-open, a bulkhead of <see cref="UpstreamPoolOptions.MaxInFlightPerEndpoint"/>, and the
/// attempt's first-byte timeout.
/// </summary>
public sealed class UpstreamEndpoint
{
    private readonly CircuitBreakerStateProvider _breaker = new();
    private int _inFlight;
    private int _queued;
    private long _openUntil;
    private volatile bool _healthy = true;
    private volatile IReadOnlyDictionary<string, int> _models = new Dictionary<string, int>();

    internal UpstreamEndpoint(string pool, UpstreamEndpointOptions options, UpstreamPoolOptions poolOptions, UpstreamMetrics metrics)
    {
        Pool = pool;
        var url = options.Url.TrimEnd('/');
        BaseUrl = new Uri(url + "/");
        // Metric label and audit name: scheme, host and port, never a path a credential could hide in.
        Name = $"{BaseUrl.Scheme}://{BaseUrl.Authority}";
        Weight = options.Weight;
        Pipeline = new ResiliencePipelineBuilder()
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                FailureRatio = poolOptions.BreakerFailureRatio,
                MinimumThroughput = poolOptions.BreakerMinimumThroughput,
                SamplingDuration = poolOptions.BreakerSamplingDuration,
                BreakDuration = poolOptions.BreakDuration,
                // Failures of the endpoint itself; a 429 or a full bulkhead says it is busy, not broken.
                ShouldHandle = new PredicateBuilder()
                    .Handle<UpstreamAttemptException>(e => e.Outcome == "server_error")
                    .Handle<HttpRequestException>()
                    .Handle<TimeoutRejectedException>(),
                StateProvider = _breaker,
                OnOpened = args =>
                {
                    Volatile.Write(ref _openUntil, Environment.TickCount64 + (long)args.BreakDuration.TotalMilliseconds);
                    metrics.BreakerOpened(this);
                    return ValueTask.CompletedTask;
                },
            })
            .AddConcurrencyLimiter(poolOptions.MaxInFlightPerEndpoint, 0)
            .AddTimeout(poolOptions.FirstByteTimeout)
            .Build();
    }

    public string Pool { get; }

    /// <summary>The OpenAI-compatible base, ending in <c>/</c> (<c>http://10.0.0.5:8000/v1/</c>).</summary>
    public Uri BaseUrl { get; }

    /// <summary>
    /// <see cref="BaseUrl"/> joined with a route (<c>chat/completions</c>), made once per route: a request to an upstream
    /// needs no URI parsing. The routes are the protocols' few fixed paths.
    /// </summary>
    internal Uri UriOf(string path)
    {
        var known = _routes;
        if (known.TryGetValue(path, out var uri)) return uri;
        uri = new Uri(BaseUrl, path);
        // Copy on write: readers never lock; a race only builds the same URI twice.
        if (known.Count < MaxRoutes) _routes = new Dictionary<string, Uri>(known, StringComparer.Ordinal) { [path] = uri };
        return uri;
    }

    /// <summary>More routes than any protocol has: a bound, not a size anyone reaches.</summary>
    internal const int MaxRoutes = 32;

    private volatile Dictionary<string, Uri> _routes = new(StringComparer.Ordinal);

    /// <summary>Bumped each time a health check replaces <see cref="Models"/> (what <see cref="UpstreamBackend.Model"/> is cached against).</summary>
    internal int ModelsVersion => Volatile.Read(ref _modelsVersion);

    private int _modelsVersion;

    /// <summary>Scheme, host and port: how metrics and audit records name the endpoint.</summary>
    public string Name { get; }

    public int Weight { get; }

    internal ResiliencePipeline Pipeline { get; }

    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Requests waiting in the upstream's own queue at its last health check (its <see cref="UpstreamPoolOptions.QueueMetric"/>; 0 without one).</summary>
    public int Queued => Volatile.Read(ref _queued);

    internal void SetQueued(int queued) => Volatile.Write(ref _queued, Math.Max(0, queued));

    /// <summary>False from a failed health check (or a failure mid-stream) until the next successful one.</summary>
    public bool Healthy => _healthy;

    /// <summary>Closed (taking traffic), open (refusing at once) or half-open (one probe at a time).</summary>
    public CircuitState Breaker => _breaker.CircuitState;

    /// <summary>Models this endpoint listed at its last successful check, with their context length (0: not given).</summary>
    public IReadOnlyDictionary<string, int> Models => _models;

    /// <summary>
    /// Whether the balancer may send it a request now: healthy, and its circuit closed, half-open, or
    /// open for longer than the break (Polly moves an open circuit to half-open only when an attempt
    /// comes, so the balancer lets that probe through).
    /// </summary>
    public bool Available => _healthy && (_breaker.CircuitState != CircuitState.Open || Environment.TickCount64 >= Volatile.Read(ref _openUntil));

    internal void Enter() => Interlocked.Increment(ref _inFlight);

    internal void Leave() => Interlocked.Decrement(ref _inFlight);

    /// <summary>Records a health verdict; returns true when the endpoint just went from up to down.</summary>
    internal bool SetHealth(bool healthy, IReadOnlyDictionary<string, int>? models = null)
    {
        if (models is not null)
        {
            _models = models;
            Interlocked.Increment(ref _modelsVersion);
        }
        var was = _healthy;
        _healthy = healthy;
        return was && !healthy;
    }
}
