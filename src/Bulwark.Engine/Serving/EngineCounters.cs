namespace Bulwark.Engine.Serving;

/// <summary>
/// Engine state for metrics, written by the step loop and read from any thread. Token counts
/// of the prefix cache are whole blocks looked up / found.
/// </summary>
public sealed class EngineCounters
{
    private long _running, _waiting, _kvBlocksUsed, _kvBlocksPeak, _kvBlocksTouched, _prefixQueries, _prefixHits, _preemptions, _kvBlocksScrubbed, _prefixCachedBlocks;
    private long _scrubBusyTicks, _scrubIdleTicks, _stepTicks;
    private long _draftTokens, _acceptedDraftTokens, _verifications;
    private long _steps, _batchedTokens, _batchedSequences, _maxBatchSequences, _promptTokens, _generatedTokens;

    public int KvBlocksTotal { get; internal set; }

    public int BlockSize { get; internal set; }

    public long Running => Volatile.Read(ref _running);
    public long Waiting => Volatile.Read(ref _waiting);
    public long KvBlocksUsed => Volatile.Read(ref _kvBlocksUsed);
    public long KvBlocksPeak => Volatile.Read(ref _kvBlocksPeak);

    /// <summary>KV blocks handed out at least once since the engine started (their memory is resident); at most <see cref="KvBlocksTotal"/>.</summary>
    public long KvBlocksTouched => Volatile.Read(ref _kvBlocksTouched);
    public long PrefixCacheQueryTokens => Volatile.Read(ref _prefixQueries);
    public long PrefixCacheHitTokens => Volatile.Read(ref _prefixHits);
    public long Preemptions => Volatile.Read(ref _preemptions);

    /// <summary>Blocks the prefix cache holds now (any tenant).</summary>
    public long PrefixCachedBlocks => Volatile.Read(ref _prefixCachedBlocks);

    /// <summary>KV blocks cleared: before they changed hands, or swept after their request ended.</summary>
    public long KvBlocksScrubbed => Volatile.Read(ref _kvBlocksScrubbed);
    /// <summary>Seconds spent clearing KV blocks while requests were running (before a step, or the sweep after one): the cost throughput pays.</summary>
    public double KvScrubSecondsBusy => Seconds(Volatile.Read(ref _scrubBusyTicks));

    /// <summary>Seconds spent clearing KV blocks while the engine had nothing else to do.</summary>
    public double KvScrubSecondsIdle => Seconds(Volatile.Read(ref _scrubIdleTicks));

    /// <summary>Seconds of forward passes (the model's steps), to set <see cref="KvScrubSecondsBusy"/> against.</summary>
    public double StepSeconds => Seconds(Volatile.Read(ref _stepTicks));

    private static double Seconds(long ticks) => (double)ticks / System.Diagnostics.Stopwatch.Frequency;

    public long Steps => Volatile.Read(ref _steps);
    public long BatchedTokens => Volatile.Read(ref _batchedTokens);
    public long BatchedSequences => Volatile.Read(ref _batchedSequences);
    public long MaxBatchSequences => Volatile.Read(ref _maxBatchSequences);
    public long PromptTokens => Volatile.Read(ref _promptTokens);
    public long GeneratedTokens => Volatile.Read(ref _generatedTokens);

    /// <summary>Draft tokens a step verified (speculative decoding).</summary>
    public long DraftTokens => Volatile.Read(ref _draftTokens);

    /// <summary>Draft tokens the target model agreed with and that were emitted.</summary>
    public long AcceptedDraftTokens => Volatile.Read(ref _acceptedDraftTokens);

    /// <summary>Sequence-steps that verified at least one draft token.</summary>
    public long Verifications => Volatile.Read(ref _verifications);

    /// <summary>Starts a new peak measurement (benchmarks run several configurations on one engine).</summary>
    public void ResetPeakKvBlocks() => Volatile.Write(ref _kvBlocksPeak, KvBlocksUsed);

    internal void RecordQueues(int running, int waiting, int kvUsed, long prefixQueries, long prefixHits, long preemptions)
    {
        Volatile.Write(ref _running, running);
        Volatile.Write(ref _waiting, waiting);
        Volatile.Write(ref _kvBlocksUsed, kvUsed);
        if (kvUsed > Volatile.Read(ref _kvBlocksPeak))
            Volatile.Write(ref _kvBlocksPeak, kvUsed);
        Volatile.Write(ref _prefixQueries, prefixQueries);
        Volatile.Write(ref _prefixHits, prefixHits);
        Volatile.Write(ref _preemptions, preemptions);
    }

    internal void RecordStep(int tokens, int sequences)
    {
        Interlocked.Increment(ref _steps);
        Interlocked.Add(ref _batchedTokens, tokens);
        Interlocked.Add(ref _batchedSequences, sequences);
        if (sequences > Volatile.Read(ref _maxBatchSequences))
            Volatile.Write(ref _maxBatchSequences, sequences);
    }

    internal void RecordCachedBlocks(long blocks) => Volatile.Write(ref _prefixCachedBlocks, blocks);

    internal void RecordTouchedBlocks(long blocks) => Volatile.Write(ref _kvBlocksTouched, blocks);

    internal void RecordScrubbed(long total) => Volatile.Write(ref _kvBlocksScrubbed, total);

    internal void RecordScrubTime(long ticks, bool busy) => Interlocked.Add(ref busy ? ref _scrubBusyTicks : ref _scrubIdleTicks, ticks);

    internal void RecordStepTime(long ticks) => Interlocked.Add(ref _stepTicks, ticks);

    /// <summary>Seconds the draft model spent proposing tokens (before the steps it drafted for).</summary>
    public double DraftModelSeconds => Seconds(Volatile.Read(ref _draftModelTicks));

    private long _draftModelTicks;

    internal void RecordDraftModelTime(long ticks) => Interlocked.Add(ref _draftModelTicks, ticks);

    internal void RecordPrompt(int tokens) => Interlocked.Add(ref _promptTokens, tokens);

    internal void RecordSpeculation(int drafted, int accepted)
    {
        Interlocked.Increment(ref _verifications);
        Interlocked.Add(ref _draftTokens, drafted);
        Interlocked.Add(ref _acceptedDraftTokens, accepted);
    }

    internal void RecordGenerated() => Interlocked.Increment(ref _generatedTokens);
}
