using Bulwark.Server.Admission;
using Bulwark.Server.Observability;

namespace Bulwark.Server.OperatorConsole;

/// <summary>Percentiles of one latency histogram, in seconds (null before anything was recorded).</summary>
public sealed record Percentiles(long Count, double? P50, double? P95, double? P99);

/// <summary>One upstream endpoint's health, as <c>bulwark_upstream_healthy</c> reports it.</summary>
public sealed record UpstreamHealth(string Pool, string Endpoint, bool Healthy);

/// <summary>
/// The overview's figures, read from <see cref="PrometheusExposition.Snapshot"/> — the values <c>/metrics</c>
/// exposes, since start-up on this replica. Counters are totals (the page turns successive totals into rates);
/// percentiles are estimated from the histogram buckets as Prometheus' <c>histogram_quantile</c> does.
/// </summary>
public sealed record OverviewFigures(
    double Requests, double PromptTokens, double GenerationTokens,
    Percentiles TimeToFirstToken, Percentiles InterTokenLatency, Percentiles RequestDuration, Percentiles QueueTime,
    double AdmissionRunning, double AdmissionWaiting, double KvCacheUsage, double? PrefixCacheHitRate,
    IReadOnlyDictionary<string, double> Refusals, IReadOnlyDictionary<string, double> GuardVerdicts, IReadOnlyDictionary<string, double> GuardRuleHits,
    IReadOnlyList<UpstreamHealth> Upstreams, string Degradation, bool Isolated)
{
    public static OverviewFigures Read(IReadOnlyList<MetricSample> samples, ServiceLevel? level)
    {
        double Total(string name) => samples.Where(s => s.Name == name).Sum(s => s.Value);
        Dictionary<string, double> By(string name, string label) => samples.Where(s => s.Name == name && s.Labels.ContainsKey(label))
            .GroupBy(s => s.Labels[label], StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Sum(s => s.Value), StringComparer.Ordinal);
        var queries = Total("bulwark_prefix_cache_queries_total");
        return new OverviewFigures(
            Total("bulwark_http_requests_total"), Total("bulwark_prompt_tokens_total"), Total("bulwark_generation_tokens_total"),
            Quantiles(samples, "bulwark_time_to_first_token_seconds"), Quantiles(samples, "bulwark_inter_token_latency_seconds"),
            Quantiles(samples, "bulwark_request_duration_seconds"), Quantiles(samples, "bulwark_request_queue_time_seconds"),
            Total("bulwark_admission_running"), Total("bulwark_admission_waiting"), Total("bulwark_kv_cache_usage_ratio"),
            queries > 0 ? Total("bulwark_prefix_cache_hits_total") / queries : null,
            By("bulwark_rejected_requests_total", "reason"), By("bulwark_guard_verdicts_total", "decision"), By("bulwark_guard_rule_hits_total", "rule"),
            samples.Where(s => s.Name == "bulwark_upstream_healthy")
                .Select(s => new UpstreamHealth(s.Labels.GetValueOrDefault("pool", ""), s.Labels.GetValueOrDefault("endpoint", ""), s.Value > 0))
                .OrderBy(u => u.Pool, StringComparer.Ordinal).ThenBy(u => u.Endpoint, StringComparer.Ordinal).ToList(),
            level is null ? "normal" : ServiceLevel.Name(level.Degradation.Level), level?.Isolated is not null);
    }

    /// <summary>The histogram's series merged (every label set), then its 50th, 95th and 99th percentiles.</summary>
    public static Percentiles Quantiles(IReadOnlyList<MetricSample> samples, string name)
    {
        double[]? bounds = null;
        long[]? buckets = null;
        foreach (var s in samples)
        {
            if (s.Name != name || s.Bounds is null || s.Buckets is null) continue;
            bounds ??= s.Bounds;
            buckets ??= new long[s.Buckets.Length];
            for (var i = 0; i < buckets.Length; i++) buckets[i] += s.Buckets[i];
        }
        if (bounds is null || buckets is null) return new Percentiles(0, null, null, null);
        return new Percentiles(buckets.Sum(), Quantile(0.50, bounds, buckets), Quantile(0.95, bounds, buckets), Quantile(0.99, bounds, buckets));
    }

    /// <summary>
    /// Prometheus' <c>histogram_quantile</c>: the bucket the rank falls in, then linear interpolation inside it (from 0
    /// for the first bucket); a rank in the +Inf bucket answers the highest finite bound. Null when the histogram is empty.
    /// </summary>
    public static double? Quantile(double q, double[] bounds, long[] buckets)
    {
        var count = buckets.Sum();
        if (count == 0) return null;
        var rank = q * count;
        long below = 0;
        for (var i = 0; i < bounds.Length; i++)
        {
            if (below + buckets[i] >= rank && buckets[i] > 0)
            {
                var lower = i == 0 ? 0 : bounds[i - 1];
                return lower + (bounds[i] - lower) * ((rank - below) / buckets[i]);
            }
            below += buckets[i];
        }
        return bounds[^1];
    }
}
