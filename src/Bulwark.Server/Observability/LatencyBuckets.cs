namespace Bulwark.Server.Observability;

/// <summary>
/// Histogram bucket bounds, in seconds, for the latencies of LLM serving: each set spans what the quantity
/// really takes, about 1.5× to 2× apart where P50/P95/P99 usually fall, so <c>histogram_quantile</c>
/// interpolates within a bucket no wider than the value (vLLM's and TGI's own sets were the reference
/// for the ranges). Given to the instruments as <see cref="System.Diagnostics.Metrics.InstrumentAdvice{T}"/>,
/// which the <c>/metrics</c> exposition and an OpenTelemetry exporter both honour.
/// </summary>
public static class LatencyBuckets
{
    /// <summary>Request arrival to first token: 5 ms (a cached prompt on a GPU) to 60 s (a long prompt on a CPU under load), 2 minutes for the tail; 2.5 s is the TTFT objective of deploy/prometheus/slo.yml.</summary>
    public static readonly double[] TimeToFirstToken =
        [0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 20, 30, 45, 60, 120];

    /// <summary>Between two tokens of one sequence: 1 ms (a small model, batch of one) to 5 s (a stalled step).</summary>
    public static readonly double[] InterTokenLatency =
        [0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5];

    /// <summary>Waiting for an admission slot: 1 ms (a free slot) to 5 minutes (a long queue timeout).</summary>
    public static readonly double[] QueueTime =
        [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300];

    /// <summary>A whole request: 5 ms (a refusal, /v1/models) to 10 minutes (a long generation).</summary>
    public static readonly double[] RequestDuration =
        [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 450, 600];

    /// <summary>Every other histogram (upstream attempts, time to first byte): 1 ms to 2 minutes.</summary>
    public static readonly double[] Default = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
}
