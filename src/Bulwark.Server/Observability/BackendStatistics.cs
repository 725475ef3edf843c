namespace Bulwark.Server.Observability;

/// <summary>
/// A snapshot of the engine's own counters. Counts since start are monotonic; the others are
/// current levels. <see cref="KvCacheUsage"/> is the fraction of KV blocks in use, 0..1;
/// <see cref="KvBlocks"/> the blocks of the KV caches and <see cref="KvBlocksTouched"/> those handed
/// out at least once (levels of the models in memory, summed).
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
    long SpeculativeVerifications = 0,
    long KvBlocks = 0,
    long KvBlocksTouched = 0);
