using System.Diagnostics.Metrics;
using Bulwark.Server.Backends;

namespace Bulwark.Server.Observability;

/// <summary>
/// Every instrument the server records, on one <see cref="Meter"/> per server instance (so
/// several servers in one process, as in tests, never mix their numbers). Instrument names are
/// already the Prometheus names (without the <c>_total</c> suffix counters get on export);
/// docs/metrics.md lists them. Durations are in seconds.
/// </summary>
public sealed class ServerMetrics : IDisposable
{
    public const string MeterName = "Bulwark.Server";

    public ServerMetrics(Func<BackendStatistics> engine, Func<(int Running, int Waiting)> admission)
    {
        Meter = new Meter(MeterName);
        Requests = Meter.CreateCounter<long>("bulwark_http_requests", description: "HTTP requests answered, by route and status code.");
        RequestDuration = Meter.CreateHistogram("bulwark_request_duration_seconds", "s", "End-to-end request latency, by route.", advice: Buckets(LatencyBuckets.RequestDuration));
        QueueTime = Meter.CreateHistogram("bulwark_request_queue_time_seconds", "s", "Time a request waited in the admission queue.", advice: Buckets(LatencyBuckets.QueueTime));
        TimeToFirstToken = Meter.CreateHistogram("bulwark_time_to_first_token_seconds", "s", "Time from request arrival to the first generated token.",
            advice: Buckets(LatencyBuckets.TimeToFirstToken));
        InterTokenLatency = Meter.CreateHistogram("bulwark_inter_token_latency_seconds", "s", "Time between consecutive tokens of one sequence.",
            advice: Buckets(LatencyBuckets.InterTokenLatency));
        PromptTokens = Meter.CreateCounter<long>("bulwark_prompt_tokens", description: "Prompt tokens processed.");
        GenerationTokens = Meter.CreateCounter<long>("bulwark_generation_tokens", description: "Tokens generated.");
        Rejected = Meter.CreateCounter<long>("bulwark_rejected_requests", description: "Requests refused before generation, by reason.");
        OutputSecrets = Meter.CreateCounter<long>("bulwark_guard_output_secrets", description: "Secrets the output guard found in generated text, by rule id and action (redact or block).");
        DeadlineExceeded = Meter.CreateCounter<long>("bulwark_deadline_exceeded", description: "Requests whose deadline passed, by stage: queue (refused 504) or generation (cut short).");
        ModelTamperAlerts = Meter.CreateCounter<long>("bulwark_model_tamper_alerts", description: "Times the served model's files stopped matching its manifest (the loaded copy keeps serving).");
        QuotaStoreSwitches = Meter.CreateCounter<long>("bulwark_quota_store_switches",
            description: "Times this replica's quota store changed mode, by the mode it entered: shared (Redis), local (per-replica shares), refuse.");
        Meter.CreateObservableGauge("bulwark_quota_store_mode", () => QuotaStoreMode,
            description: "0: quotas shared in Redis; 1: Redis unreachable, per-replica shares; 2: Redis unreachable, requests of keys with limits refused.");
        AuditSpooled = Meter.CreateCounter<long>("bulwark_audit_spooled_records", description: "Audit records written to the local spool because the store refused them.");
        AuditReplayed = Meter.CreateCounter<long>("bulwark_audit_spool_replayed_records", description: "Spooled audit records written to the store.");
        AuditDropped = Meter.CreateCounter<long>("bulwark_audit_dropped_records", description: "Audit records lost, by reason: queue_full, spool_full, spool_unwritable.");
        KeyTokens = Meter.CreateCounter<long>("bulwark_key_tokens",
            description: "Tokens (prompt and completion) of the requests of each API key, by key id: an issued key, so the series are as many as the keys.");
        KeyRefusals = Meter.CreateCounter<long>("bulwark_key_refusals",
            description: "Requests of an authenticated key refused by policy (rate limits, model access, scope, quota store), by key id and reason.");
        Meter.CreateObservableGauge("bulwark_audit_spool_bytes", () => Interlocked.Read(ref _auditSpoolBytes), "By",
            "Bytes of audit records waiting in the local spool for the store.");
        Meter.CreateObservableGauge("bulwark_admission_running", () => admission().Running, description: "Requests holding an admission slot.");
        Meter.CreateObservableGauge("bulwark_admission_waiting", () => admission().Waiting, description: "Requests waiting in the admission queue.");
        Meter.CreateObservableGauge("bulwark_engine_running_sequences", () => engine().RunningSequences, description: "Sequences the engine is running.");
        Meter.CreateObservableGauge("bulwark_engine_waiting_sequences", () => engine().WaitingSequences, description: "Sequences waiting inside the engine.");
        Meter.CreateObservableGauge("bulwark_kv_cache_usage_ratio", () => engine().KvCacheUsage, description: "Fraction of KV-cache blocks in use (0..1).");
        Meter.CreateObservableGauge("bulwark_kv_blocks", () => engine().KvBlocks, description: "KV-cache blocks of the models in memory.");
        Meter.CreateObservableGauge("bulwark_kv_blocks_touched", () => engine().KvBlocksTouched,
            description: "KV-cache blocks handed out at least once since their model loaded: their memory is resident, so RSS stops growing with the KV cache when this reaches bulwark_kv_blocks.");
        Meter.CreateObservableCounter("bulwark_prefix_cache_queries", () => engine().PrefixCacheQueries, description: "Prefix-cache lookups, in blocks.");
        Meter.CreateObservableCounter("bulwark_prefix_cache_hits", () => engine().PrefixCacheHits, description: "Prefix-cache hits, in blocks.");
        Meter.CreateObservableCounter("bulwark_preemptions", () => engine().Preemptions, description: "Sequences preempted because KV blocks ran out.");
        Meter.CreateObservableCounter("bulwark_kv_blocks_scrubbed", () => engine().KvBlocksScrubbed,
            description: "KV blocks cleared after their request ended: before they changed hands, or swept when the engine was idle.");
        Meter.CreateObservableCounter("bulwark_kv_scrub_seconds", () => new[]
        {
            new Measurement<double>(engine().KvScrubSecondsBusy, new KeyValuePair<string, object?>("when", "busy")),
            new Measurement<double>(engine().KvScrubSecondsIdle, new KeyValuePair<string, object?>("when", "idle")),
        }, unit: "s", description: "Time spent clearing KV blocks: busy = while requests ran (the cost to throughput), idle = when the engine had nothing else to do.");
        Meter.CreateObservableCounter("bulwark_spec_draft_tokens", () => engine().SpeculativeDraftTokens,
            description: "Draft tokens speculative decoding proposed and the model verified.");
        Meter.CreateObservableCounter("bulwark_spec_accepted_tokens", () => engine().SpeculativeAcceptedTokens,
            description: "Draft tokens the model agreed with (each one a token gained without its own forward pass).");
        Meter.CreateObservableCounter("bulwark_spec_verification_steps", () => engine().SpeculativeVerifications,
            description: "Sequence-steps that verified draft tokens; (accepted tokens + steps) ÷ steps is the tokens such a step emits on average, the speed-up bound.");
        Meter.CreateObservableGauge("bulwark_spec_acceptance_ratio", () => AcceptanceRatio(engine()),
            description: "Accepted ÷ drafted tokens since start (0 before any draft).");
        RuntimeMetrics.AddTo(Meter);
    }

    private static double AcceptanceRatio(BackendStatistics s) =>
        s.SpeculativeDraftTokens == 0 ? 0 : (double)s.SpeculativeAcceptedTokens / s.SpeculativeDraftTokens;

    private static InstrumentAdvice<double> Buckets(double[] bounds) => new() { HistogramBucketBoundaries = bounds };

    public Meter Meter { get; }
    public Counter<long> Requests { get; }
    public Histogram<double> RequestDuration { get; }
    public Histogram<double> QueueTime { get; }
    public Histogram<double> TimeToFirstToken { get; }
    public Histogram<double> InterTokenLatency { get; }
    public Counter<long> PromptTokens { get; }
    public Counter<long> GenerationTokens { get; }
    public Counter<long> Rejected { get; }
    public Counter<long> ModelTamperAlerts { get; }
    public Counter<long> DeadlineExceeded { get; }
    public Counter<long> OutputSecrets { get; }
    public Counter<long> QuotaStoreSwitches { get; }
    public Counter<long> AuditSpooled { get; }
    public Counter<long> AuditReplayed { get; }
    public Counter<long> AuditDropped { get; }
    public Counter<long> KeyTokens { get; }
    public Counter<long> KeyRefusals { get; }

    private int _quotaStoreMode;
    private long _auditSpoolBytes;

    /// <summary>Set by the quota store: 0 shared, 1 local shares, 2 refusing.</summary>
    public int QuotaStoreMode { get => Volatile.Read(ref _quotaStoreMode); set => Volatile.Write(ref _quotaStoreMode, value); }

    /// <summary>Set by the audit writer: the size of its spool file.</summary>
    public long AuditSpoolBytes { get => Interlocked.Read(ref _auditSpoolBytes); set => Interlocked.Exchange(ref _auditSpoolBytes, value); }

    public void Dispose() => Meter.Dispose();
}
