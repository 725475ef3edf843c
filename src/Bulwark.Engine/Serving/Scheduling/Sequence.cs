using Bulwark.Engine.KvCache;

namespace Bulwark.Engine.Serving.Scheduling;

/// <summary>
/// One stream of tokens being generated: prompt followed by output. Its KV exists for the first
/// <see cref="ComputedCount"/> tokens; each step computes some of the rest (a prefill chunk,
/// or the one token sampled last step). Preemption drops all KV and sets the count back to 0,
/// so the prompt and the output so far are recomputed later (preemption by recompute).
/// </summary>
internal sealed class Sequence
{
    private int[] _tokens;

    public Sequence(long id, ReadOnlySpan<int> prompt, int maxNewTokens, int priority, long arrival, BlockHash cacheRoot)
        : this(id, prompt, prompt.Length, maxNewTokens, priority, arrival, cacheRoot)
    {
    }

    private Sequence(long id, ReadOnlySpan<int> tokens, int promptLength, int maxNewTokens, int priority, long arrival, BlockHash cacheRoot)
    {
        if (promptLength < 1)
            throw new ArgumentException("a sequence needs at least one prompt token", nameof(tokens));
        Id = id;
        _tokens = new int[Math.Max(tokens.Length, promptLength + Math.Max(1, maxNewTokens))];
        tokens.CopyTo(_tokens);
        Count = tokens.Length;
        PromptLength = promptLength;
        Priority = priority;
        Arrival = arrival;
        CacheRoot = cacheRoot;
        ChainHash = cacheRoot;
    }

    public long Id { get; }

    /// <summary>Smaller is more urgent (vLLM's convention); equal priorities run in arrival order.</summary>
    public int Priority { get; }

    public long Arrival { get; }

    public BlockHash CacheRoot { get; }

    /// <summary>Whose KV this sequence computes: the prefix cache remembers it per block, so one tenant's blocks can be flushed.</summary>
    public string Tenant { get; init; } = "";

    public int PromptLength { get; }

    /// <summary>Prompt plus output tokens.</summary>
    public int Count { get; private set; }

    public int OutputCount => Count - PromptLength;

    /// <summary>Tokens whose KV is in the cache, in position order.</summary>
    public int ComputedCount { get; set; }

    public BlockTable Blocks { get; } = new();

    /// <summary>Full blocks whose chained hash is known (published to or found in the prefix cache).</summary>
    public int HashedBlocks { get; set; }

    /// <summary>Chain hash of the last hashed block (the root when none).</summary>
    public BlockHash ChainHash { get; set; }

    public SequenceStatus Status { get; set; } = SequenceStatus.Waiting;

    public int Preemptions { get; set; }

    /// <summary>
    /// Where the output stands in the request's constraint (null: unconstrained). It follows the output
    /// tokens, not the KV cache, so preemption by recompute leaves it as it is.
    /// </summary>
    public Constraints.MatcherState? Constraint { get; set; }

    /// <summary>
    /// An embedding input's pooling (<see cref="Model.Config.PoolingType.None"/>: a generation). An embedding needs
    /// every token's state it pools, so it neither takes blocks from the prefix cache nor leaves any there.
    /// </summary>
    public Model.Config.PoolingType Pooling { get; init; }

    public bool UsesPrefixCache => Pooling == Model.Config.PoolingType.None;

    /// <summary>Whatever the engine attaches (its per-choice state); the scheduler never looks at it.</summary>
    public object? Owner { get; set; }

    public ReadOnlySpan<int> Tokens => _tokens.AsSpan(0, Count);

    public ReadOnlySpan<int> OutputTokens => _tokens.AsSpan(PromptLength, OutputCount);

    public int LastToken => _tokens[Count - 1];

    /// <summary>How this sequence drafts tokens for speculative decoding (null: it does not).</summary>
    public Speculation.SpeculativeConfig? Speculation { get; init; }

    /// <summary>
    /// Draft tokens to verify after the last token in the next step (positions Count, Count + 1, ...). They are
    /// not part of <see cref="Tokens"/>: the ones the target model agrees with are appended after the step,
    /// and KV written for the others is rolled back (<see cref="Scheduler.SettleDrafts"/>).
    /// </summary>
    public ReadOnlySpan<int> Drafts => _drafts.AsSpan(0, DraftCount);

    public int DraftCount { get; private set; }

    private int[] _drafts = [];

    /// <summary>A span to write up to <paramref name="capacity"/> drafts into; <see cref="SetDraftCount"/> then says how many were written.</summary>
    public Span<int> DraftBuffer(int capacity)
    {
        if (_drafts.Length < capacity)
            _drafts = new int[capacity];
        return _drafts.AsSpan(0, capacity);
    }

    public void SetDraftCount(int count)
    {
        System.Diagnostics.Debug.Assert(count >= 0 && count <= _drafts.Length);
        DraftCount = count;
    }

    /// <summary>Token at <paramref name="index"/> counting drafts after the tokens (what a step computes there).</summary>
    public int TokenOrDraft(int index) => index < Count ? _tokens[index] : _drafts[index - Count];

    public void Append(int token)
    {
        if (Count == _tokens.Length)
            Array.Resize(ref _tokens, _tokens.Length * 2);
        _tokens[Count++] = token;
    }

    /// <summary>
    /// Drops the tokens from <paramref name="count"/> on (and their KV, by lowering <see cref="ComputedCount"/>). Only
    /// for sequences nothing else sees: a draft model's shadow of a target sequence takes back its own drafts.
    /// </summary>
    public void TruncateTo(int count)
    {
        if (count < PromptLength || count > Count)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"a sequence can be cut back to between {PromptLength} and {Count} tokens");
        Count = count;
        ComputedCount = Math.Min(ComputedCount, count);
    }

    /// <summary>A child sharing this sequence's tokens (and, through the allocator, its blocks).</summary>
    public Sequence Fork(long id, int maxNewTokens)
    {
        var child = new Sequence(id, Tokens, PromptLength, maxNewTokens, Priority, Arrival, CacheRoot)
        {
            ComputedCount = ComputedCount,
            HashedBlocks = HashedBlocks,
            ChainHash = ChainHash,
            Status = Status,
            Tenant = Tenant,
            Constraint = Constraint,
            Speculation = Speculation,
        };
        return child;
    }
}
