namespace Bulwark.Server.Observability;

/// <summary>
/// A snapshot of the engine's own counters. Counts since start are monotonic; the others are
/// current levels. <see cref="KvCacheUsage"/> is the fraction of KV blocks in use, 0..1.
/// </summary>
public readonly record struct BackendStatistics(
    int RunningSequences,
    int WaitingSequences,
    double KvCacheUsage,
    long PrefixCacheQueries,
    long PrefixCacheHits,
    long Preemptions,
    long KvBlocksScrubbed = 0,
    double KvScrubSecondsBusy = 0,
    double KvScrubSecondsIdle = 0,
    long SpeculativeDraftTokens = 0,
    long SpeculativeAcceptedTokens = 0,
    long SpeculativeVerifications = 0);
