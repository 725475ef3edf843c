using System.Diagnostics.Metrics;

namespace Bulwark.Server.Guardrails.GuardModels;

/// <summary>
/// The guard model's instruments on the server's meter (exported with Prometheus' suffixes):
/// <c>bulwark_guard_model_checks</c> by stage and outcome (<c>verdict</c>, <c>timeout</c>,
/// <c>error</c>, <c>too_long</c>, <c>unavailable</c>) and decision; <c>bulwark_guard_model_verdicts</c>
/// by stage, safety and category (one per category named; <c>none</c> for a verdict naming none);
/// <c>bulwark_guard_model_latency_seconds</c>; <c>bulwark_guard_model_timeouts</c>. The stage is
/// <c>input</c> (the request's texts) or <c>output</c> (the answers). No text.
/// </summary>
public sealed class GuardModelMetrics(Meter meter)
{
    public Counter<long> Checks { get; } = meter.CreateCounter<long>("bulwark_guard_model_checks", description: "Guard model checks, by stage, outcome and decision.");

    public Counter<long> Verdicts { get; } = meter.CreateCounter<long>("bulwark_guard_model_verdicts", description: "Guard model verdicts, by stage, safety and category.");

    public Histogram<double> Latency { get; } = meter.CreateHistogram("bulwark_guard_model_latency_seconds", "s", "Time of one guard model check, by stage.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });

    public Counter<long> Timeouts { get; } = meter.CreateCounter<long>("bulwark_guard_model_timeouts", description: "Guard model checks that ran out of time, by stage.");

    public void Record(string stage, GuardModelCheck check)
    {
        var s = new KeyValuePair<string, object?>("stage", stage);
        Checks.Add(1, s, new("outcome", check.Outcome), new("decision", check.Decision.ToString().ToLowerInvariant()));
        Latency.Record(check.Elapsed.TotalSeconds, s);
        if (check.Outcome == GuardModelCheck.TimedOut) Timeouts.Add(1, s);
        if (check.Verdict is not { } v) return;
        var safety = new KeyValuePair<string, object?>("safety", v.Safety.ToString().ToLowerInvariant());
        if (v.Categories.Count == 0) Verdicts.Add(1, s, safety, new("category", "none"));
        foreach (var c in v.Categories) Verdicts.Add(1, s, safety, new("category", c));
    }
}
