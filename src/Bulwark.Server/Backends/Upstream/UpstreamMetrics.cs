using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Bulwark.Server.Observability;
using Polly.CircuitBreaker;

namespace Bulwark.Server.Backends.Upstream;

/// <summary>
/// The gateway's instruments, per upstream endpoint (label <c>endpoint</c> = scheme://host:port, and
/// <c>pool</c>): requests by outcome, latency and time to first byte, retries, ejections and circuit
/// openings, and gauges of what each endpoint holds now (in flight, healthy, breaker state). On the
/// server's own meter, so <c>/metrics</c> shows them beside everything else (docs/metrics.md).
/// </summary>
public sealed class UpstreamMetrics
{
    private readonly ConcurrentBag<UpstreamPool> _pools = [];
    private readonly Counter<long> _requests;
    private readonly Histogram<double> _duration;
    private readonly Histogram<double> _firstByte;
    private readonly Counter<long> _retries;
    private readonly Counter<long> _ejections;
    private readonly Counter<long> _opened;

    public UpstreamMetrics(ServerMetrics metrics)
    {
        var meter = metrics.Meter;
        _requests = meter.CreateCounter<long>("bulwark_upstream_requests", description: "Attempts sent to upstream endpoints, by pool, endpoint and outcome.");
        _duration = meter.CreateHistogram<double>("bulwark_upstream_request_duration_seconds", "s", "Upstream attempts from send to the end of the response, by endpoint.");
        _firstByte = meter.CreateHistogram<double>("bulwark_upstream_time_to_first_byte_seconds", "s", "Upstream attempts from send to the response headers, by endpoint.");
        _retries = meter.CreateCounter<long>("bulwark_upstream_retries", description: "Attempts retried (on another endpoint where one is left), by the endpoint that failed.");
        _ejections = meter.CreateCounter<long>("bulwark_upstream_ejections", description: "Times an endpoint was taken out of rotation by a failed health check or a failure mid-stream.");
        _opened = meter.CreateCounter<long>("bulwark_upstream_breaker_opened", description: "Times an endpoint's circuit breaker opened.");
        meter.CreateObservableGauge("bulwark_upstream_in_flight", () => Each(e => e.InFlight), description: "Requests in flight to each upstream endpoint.");
        meter.CreateObservableGauge("bulwark_upstream_queued", () => Each(e => e.Queued), description: "Requests waiting in each endpoint's own queue at its last health check (with a QueueMetric).");
        meter.CreateObservableGauge("bulwark_upstream_healthy", () => Each(e => e.Healthy ? 1 : 0), description: "1 when the endpoint's last health check passed, else 0.");
        meter.CreateObservableGauge("bulwark_upstream_breaker_state", () => Each(e => e.Breaker switch
        {
            CircuitState.Open or CircuitState.Isolated => 2,
            CircuitState.HalfOpen => 1,
            _ => 0,
        }), description: "Circuit breaker of each endpoint: 0 closed, 1 half-open, 2 open.");
    }

    internal void Observe(UpstreamPool pool) => _pools.Add(pool);

    internal void Attempt(UpstreamEndpoint endpoint, string outcome, TimeSpan duration)
    {
        _requests.Add(1, Pool(endpoint), Endpoint(endpoint), new("outcome", outcome));
        _duration.Record(duration.TotalSeconds, Pool(endpoint), Endpoint(endpoint));
    }

    internal void FirstByte(UpstreamEndpoint endpoint, TimeSpan elapsed) => _firstByte.Record(elapsed.TotalSeconds, Pool(endpoint), Endpoint(endpoint));

    internal void Retried(UpstreamEndpoint endpoint) => _retries.Add(1, Pool(endpoint), Endpoint(endpoint));

    internal void Ejected(UpstreamEndpoint endpoint) => _ejections.Add(1, Pool(endpoint), Endpoint(endpoint));

    internal void BreakerOpened(UpstreamEndpoint endpoint) => _opened.Add(1, Pool(endpoint), Endpoint(endpoint));

    private IEnumerable<Measurement<int>> Each(Func<UpstreamEndpoint, int> value)
    {
        foreach (var pool in _pools)
            foreach (var e in pool.Endpoints)
                yield return new Measurement<int>(value(e), Pool(e), Endpoint(e));
    }

    private static KeyValuePair<string, object?> Pool(UpstreamEndpoint e) => new("pool", e.Pool);

    private static KeyValuePair<string, object?> Endpoint(UpstreamEndpoint e) => new("endpoint", e.Name);
}
