using System.Diagnostics;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Bulwark.Engine.KvCache;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Serving.Embeddings;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Serving.Scheduling;
using Bulwark.Engine.Serving.Speculation;

namespace Bulwark.Engine.Serving;

/// <summary>
/// Serves many generations at once over one model: requests enter a queue, one thread runs
/// steps (schedule → execute one batched forward → sample), and each request reads its own
/// stream of token events. Cancelling a request frees its KV blocks at the next step boundary.
/// </summary>
public sealed class LlmEngine : IDisposable
{
    private readonly IModelExecutor _executor;
    private readonly EngineOptions _options;
    private readonly Scheduler _scheduler;
    private readonly StepBatch _batch = new();
    private readonly TokenEmitter _emitter;
    private readonly ConcurrentQueue<RequestState> _arrivals = new();
    private readonly ConcurrentQueue<RequestState> _cancellations = new();
    private readonly ConcurrentQueue<(RequestState Request, int Index)> _choiceStops = new();
    private readonly ConcurrentQueue<(string? Tenant, TaskCompletionSource<int> Done)> _flushes = new();
    private readonly ManualResetEventSlim _wake = new(false);
    private readonly Thread _loop;
    private float[] _logits = [];
    private float[] _pooled = [];
    private readonly DraftModelRunner? _draftRunner;
    private readonly List<DraftModelRunner.Request> _draftModelRequests = new();
    private long _nextSequenceId;
    private long _nextArrival;
    private volatile bool _stopping;
    private volatile bool _exited;
    private int _disposed;

    public LlmEngine(IModelExecutor executor, EngineOptions? options = null)
    {
        _executor = executor;
        _options = options ?? new EngineOptions();
        _options.Scheduler.Validate();
        _options.Speculative?.Validate();
        if (_options.Speculative is { Method: SpeculativeMethod.DraftModel } && _options.DraftModel is null)
            throw new ArgumentException("the default speculative method draft_model needs a draft model (EngineOptions.DraftModel)", nameof(options));
        var blocks = _options.KvCacheBlocks ?? BlocksForBudget(executor, _options);
        if (blocks < 1)
            throw new ArgumentOutOfRangeException(nameof(options), $"the KV cache needs at least 1 block; got {blocks}");
        executor.AllocateKvCache(blocks, _options.BlockSize);
        _scheduler = new Scheduler(_options.Scheduler, new BlockAllocator(blocks, _options.BlockSize, _options.PrefixCaching, executor.KvWindow));
        Counters.KvBlocksTotal = blocks;
        Counters.BlockSize = _options.BlockSize;
        _emitter = new TokenEmitter(new Sampler(executor.VocabSize), _options, Counters, executor.MaxContextLength);
        if (_options.DraftModel is { } draft)
        {
            if (draft.Executor.VocabSize != executor.VocabSize)
                throw new ArgumentException($"the draft model's vocabulary has {draft.Executor.VocabSize} tokens; the model's has {executor.VocabSize}: a draft model must share the tokenizer", nameof(options));
            var draftBlocks = draft.KvCacheBlocks ?? (int)Math.Min(int.MaxValue, draft.KvCacheMemoryBytes / draft.Executor.KvBytesPerBlock(_options.BlockSize));
            _draftRunner = new DraftModelRunner(draft.Executor, draftBlocks, _options.BlockSize);
        }
        _loop = new Thread(RunLoop) { IsBackground = true, Name = "bulwark-engine-step" };
        _loop.Start();
    }

    public EngineCounters Counters { get; } = new();

    /// <summary>Whether requests may draft with a draft model (<see cref="EngineOptions.DraftModel"/>).</summary>
    public bool HasDraftModel => _draftRunner is not null;

    public int VocabSize => _executor.VocabSize;

    public int MaxContextLength => _executor.MaxContextLength;

    /// <summary>Freed KV blocks cleared per step while the engine is busy; the rest wait for an idle moment.</summary>
    public const int SweepPerStep = 2;

    /// <summary>
    /// Drops the prefix cache's blocks computed for <paramref name="tenant"/> (every tenant's when null), so no
    /// later request reuses them, and clears those no running sequence holds (the others when their sequence
    /// ends). Returns how many cached blocks were dropped.
    /// </summary>
    public Task<int> FlushPrefixCacheAsync(string? tenant)
    {
        var done = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (_exited) return Task.FromException<int>(new EngineStoppedException());
        _flushes.Enqueue((tenant, done));
        _wake.Set();
        if (_exited && _flushes.TryDequeue(out var late)) late.Done.TrySetException(new EngineStoppedException());
        return done.Task;
    }

    /// <summary>The block allocator (test access: read only while the engine is idle).</summary>
    internal BlockAllocator Blocks => _scheduler.Blocks;

    /// <summary>Freed KV blocks still holding an ended request's keys and values (test access: zero once the engine has been idle).</summary>
    internal int DirtyFreeBlocks => _dirtyFreeBlocks;

    private volatile int _dirtyFreeBlocks;

    /// <summary>The model's end-of-sequence tokens (what a constraint allows once its value is complete).</summary>
    public IReadOnlyList<int> EosTokenIds => _options.EosTokenIds;

    /// <summary>Sequences the scheduler runs at once: an upper bound on a request's n.</summary>
    public int MaxSequences => _options.Scheduler.MaxSequences;

    /// <summary>Throws with the field, value and limit when the request can never be served.</summary>
    public void Validate(EngineRequest request)
    {
        var p = request.Sampling;
        p.Validate(_executor.VocabSize);
        var prompt = request.PromptTokens;
        CheckTokens(prompt, "prompt", nameof(request));
        var total = (long)prompt.Count + p.MaxTokens;
        if (total > _executor.MaxContextLength)
            throw new ArgumentOutOfRangeException(nameof(request),
                $"prompt tokens + max_tokens must be at most the context length {_executor.MaxContextLength}; got {prompt.Count} + {p.MaxTokens} = {total}");
        var blocksNeeded = (total + _options.BlockSize - 1) / _options.BlockSize;
        if (_executor.KvWindow is var window and > 0)
        {
            // Every layer windowed: blocks before the window are released as the sequence advances, so at a
            // reservation it holds the window's blocks, the step's, and one for alignment at each end.
            var step = Math.Min(_options.Scheduler.MaxPrefillChunk, _options.Scheduler.MaxBatchedTokens);
            blocksNeeded = Math.Min(blocksNeeded, (window - 1L + step + _options.BlockSize - 1) / _options.BlockSize + 2);
        }
        if (blocksNeeded > Counters.KvBlocksTotal)
            throw new ArgumentOutOfRangeException(nameof(request),
                $"prompt tokens + max_tokens need {blocksNeeded} KV blocks; the cache holds {Counters.KvBlocksTotal} (raise --kv-cache-memory)");
        if (p.N > _options.Scheduler.MaxSequences)
            throw new ArgumentOutOfRangeException(nameof(request),
                $"n must be at most the engine's maximum number of sequences {_options.Scheduler.MaxSequences}; got {p.N}");
        if (request.Constraint is { } constraint)
        {
            if (constraint.Vocabulary.Size != _executor.VocabSize)
                throw new ArgumentException($"the constraint's vocabulary has {constraint.Vocabulary.Size} tokens; the model has {_executor.VocabSize}", nameof(request));
            if (_options.EosTokenIds.Count == 0)
                throw new ArgumentException("constrained decoding needs the model's end-of-sequence token, and this model has none", nameof(request));
            if (p.IgnoreEos)
                throw new ArgumentException("ignore_eos cannot be combined with constrained decoding: the output ends when the constraint is complete", nameof(request));
        }
        request.Speculative?.Validate();
        if (request.Speculative is { Method: SpeculativeMethod.DraftModel } && _draftRunner is null)
            throw new ArgumentException("speculative method draft_model needs a draft model, and this engine has none", nameof(request));
        if (p.StopStrings is { Count: > 0 } && request.Detokenizer is null)
            throw new ArgumentException("stop strings need a detokenizer on the request", nameof(request));
    }

    /// <summary>Streams the request's token events; enumerating stops when every choice has finished.</summary>
    public async IAsyncEnumerable<TokenEvent> GenerateAsync(EngineRequest request, [EnumeratorCancellation] CancellationToken ct = default)
    {
        Validate(request);
        if (_stopping)
            throw new EngineStoppedException();
        var salt = request.Tenant + "\0" + (request.CacheSalt ?? "");
        var state = new RequestState(request, _options.Time.GetTimestamp(), BlockHash.Root(salt));
        request.Choices?.Attach(index =>
        {
            _choiceStops.Enqueue((state, index));
            _wake.Set();
        });
        _arrivals.Enqueue(state);
        // The loop drains arrivals after it exits; one that raced past that drain is ended here.
        if (_exited)
            RejectArrivals();
        else
            _wake.Set();
        var finished = false;
        try
        {
            await foreach (var e in state.Events.Reader.ReadAllAsync(ct).ConfigureAwait(false))
                yield return e;
            finished = true;
        }
        finally
        {
            if (!finished)
            {
                _cancellations.Enqueue(state);
                _wake.Set();
            }
        }
    }

    /// <summary>Throws with the field, value and limit when the embedding input can never be computed.</summary>
    public void Validate(EmbeddingRequest request)
    {
        if (_executor.EmbeddingLength <= 0)
            throw new NotSupportedException("this model's executor computes no embeddings");
        if (request.Pooling == PoolingType.None || !Enum.IsDefined(request.Pooling))
            throw new ArgumentOutOfRangeException(nameof(request), $"pooling must be mean, cls or last; got {request.Pooling}");
        var tokens = request.Tokens;
        CheckTokens(tokens, "input", nameof(request));
        if (tokens.Count > _executor.MaxContextLength)
            throw new ArgumentOutOfRangeException(nameof(request), $"the input has {tokens.Count} tokens; the context length is {_executor.MaxContextLength}");
        var blocksNeeded = ((long)tokens.Count + _options.BlockSize - 1) / _options.BlockSize;
        if (blocksNeeded > Counters.KvBlocksTotal)
            throw new ArgumentOutOfRangeException(nameof(request),
                $"the input's {tokens.Count} tokens need {blocksNeeded} KV blocks; the cache holds {Counters.KvBlocksTotal} (raise --kv-cache-memory)");
    }

    /// <summary>At least one token, every one in the vocabulary.</summary>
    private void CheckTokens(IReadOnlyList<int> tokens, string what, string parameter)
    {
        if (tokens.Count == 0)
            throw new ArgumentException($"the {what} must contain at least one token", parameter);
        foreach (var t in tokens)
            if ((uint)t >= (uint)_executor.VocabSize)
                throw new ArgumentOutOfRangeException(parameter, $"{what} token id must be between 0 and {_executor.VocabSize - 1}; got {t}");
    }

    /// <summary>Width of the vectors <see cref="EmbedAsync"/> returns; 0 when the executor computes none.</summary>
    public int EmbeddingLength => _executor.EmbeddingLength;

    /// <summary>
    /// The input's pooled (and, as asked, unit-length) vector. The input queues and prefills like a prompt, in
    /// the same steps as the generations (so it shares their token budget rather than stalling them); its KV
    /// blocks are freed as soon as its last token is computed.
    /// </summary>
    public async Task<float[]> EmbedAsync(EmbeddingRequest request, CancellationToken ct = default)
    {
        Validate(request);
        if (_stopping)
            throw new EngineStoppedException();
        var engineRequest = new EngineRequest { PromptTokens = request.Tokens, Tenant = request.Tenant, Priority = request.Priority };
        var state = new RequestState(engineRequest, _options.Time.GetTimestamp(), BlockHash.Root(request.Tenant))
        {
            Embedding = new PooledState(request, _executor.EmbeddingLength),
        };
        _arrivals.Enqueue(state);
        if (_exited)
            RejectArrivals();
        else
            _wake.Set();
        try
        {
            await state.Events.Reader.Completion.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            _cancellations.Enqueue(state);
            _wake.Set();
            throw;
        }
        return state.Embedding.Result ?? throw new InvalidOperationException("the engine ended the embedding without a vector");
    }

    /// <summary>
    /// Drains: every queued or running request ends at the next step boundary with an
    /// <see cref="EngineStoppedException"/>, its KV blocks are freed, and the step thread exits.
    /// The executor is the caller's to dispose afterwards.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _stopping = true;
        _wake.Set();
        _loop.Join();
        _draftRunner?.Dispose();
    }

    private static int BlocksForBudget(IModelExecutor executor, EngineOptions options)
    {
        var perBlock = executor.KvBytesPerBlock(options.BlockSize);
        return (int)Math.Min(int.MaxValue, options.KvCacheMemoryBytes / Math.Max(1, perBlock));
    }

    private void RunLoop()
    {
        while (true)
        {
            Admit();
            if (!_scheduler.HasWork)
            {
                if (_stopping)
                    break;
                // Idle: clear what ended requests left in the KV cache, unless work arrives meanwhile.
                Sweep(int.MaxValue, yieldToArrivals: true);
                if (!_arrivals.IsEmpty || !_flushes.IsEmpty)
                    continue;
                _wake.Wait();
                _wake.Reset();
                continue;
            }
            try
            {
                Step();
                Sweep(SweepPerStep, yieldToArrivals: false);
            }
            catch (Exception ex)
            {
                // A failing forward pass fails the requests in flight, not the engine.
                FailAll(ex);
            }
            if (_stopping)
                FailAll(new EngineStoppedException());
        }
        _exited = true;
        RejectArrivals();
        while (_flushes.TryDequeue(out var flush))
            flush.Done.TrySetException(new EngineStoppedException());
        PublishCounters();
    }

    private void RejectArrivals()
    {
        while (_arrivals.TryDequeue(out var state))
            state.Events.Writer.TryComplete(new EngineStoppedException());
    }

    private void Admit()
    {
        while (_cancellations.TryDequeue(out var cancelled))
            Finish(cancelled, null);
        while (_arrivals.TryDequeue(out var state))
        {
            if (state.Done)
                continue; // cancelled before it was admitted
            if (_stopping)
            {
                state.Events.Writer.TryComplete(new EngineStoppedException());
                continue;
            }
            var p = state.Sampling;
            var embedding = state.Embedding;
            var seq = new Sequence(_nextSequenceId++, state.Prompt, embedding is null ? p.MaxTokens : 0, state.Request.Priority, _nextArrival++, state.CacheRoot)
            {
                Tenant = state.Request.Tenant,
                Constraint = state.Request.Constraint?.Start,
                Pooling = embedding?.Request.Pooling ?? PoolingType.None,
                // Embedding inputs generate nothing, so there is nothing to draft.
                Speculation = embedding is null && (state.Request.Speculative ?? _options.Speculative) is { Enabled: true } spec ? spec : null,
            };
            state.ArrivalStep = Counters.Steps;
            var choice = new Choice(state, 0, seq) { ForkPending = embedding is null && p.N > 1 };
            state.Choices.Add(choice);
            state.Unfinished = embedding is null ? p.N : 1;
            Counters.RecordPrompt(state.Prompt.Length);
            _scheduler.Add(seq);
        }
        while (_choiceStops.TryDequeue(out var stop))
            StopChoice(stop.Request, stop.Index);
        while (_flushes.TryDequeue(out var flush))
            flush.Done.TrySetResult(_scheduler.Blocks.FlushPrefixCache(flush.Tenant));
        PublishCounters();
    }

    /// <summary>
    /// Ends one choice the reader no longer wants: its sequence leaves the scheduler (freeing its
    /// blocks) and it emits nothing more. Choice 0 still waiting to fork stays until the others
    /// have forked from its prompt; a fork not created yet never will be.
    /// </summary>
    private void StopChoice(RequestState request, int index)
    {
        if (request.Done || !request.StoppedEarly.Add(index))
            return;
        var choice = request.Choices.Find(c => c.Index == index);
        if (choice is null || choice.Finished || choice.ForkPending)
            return;
        EndChoice(choice);
    }

    private void EndChoice(Choice choice)
    {
        choice.Finished = true;
        _scheduler.Remove(choice.Sequence);
        _draftRunner?.Release(choice.Sequence);
        var request = choice.Request;
        if (--request.Unfinished == 0)
            Finish(request, null);
    }

    private void Step()
    {
        _draftModelRequests.Clear();
        foreach (var seq in _scheduler.Running)
        {
            var request = ((Choice)seq.Owner!).Request;
            Drafter.Propose(seq, request.Sampling.MaxTokens, _executor.MaxContextLength, request.Request.Constraint, _options.EosTokenIds,
                _draftRunner is null ? null : _draftModelRequests);
        }
        if (_draftModelRequests.Count > 0)
        {
            var draftStart = Stopwatch.GetTimestamp();
            _draftRunner!.Propose(_draftModelRequests);
            foreach (var (seq, _) in _draftModelRequests)
                Drafter.CutToGrammar(seq, ((Choice)seq.Owner!).Request.Request.Constraint, _options.EosTokenIds);
            Counters.RecordDraftModelTime(Stopwatch.GetTimestamp() - draftStart);
        }
        var step = _scheduler.Schedule(SeatsFor);
        if (step.IsEmpty)
        {
            // Only possible if the head of the queue cannot fit even alone, which Validate rules out.
            var head = (Choice)_scheduler.Waiting[0].Owner!;
            Finish(head.Request, new InvalidOperationException("the request does not fit in the KV cache"));
            return;
        }
        var scheduledAt = _options.Time.GetTimestamp();
        foreach (var seq in step.Sequences)
        {
            var request = ((Choice)seq.Owner!).Request;
            request.FirstScheduledTimestamp ??= scheduledAt;
            if (request.CachedPromptTokens < 0)
                request.CachedPromptTokens = seq.ComputedCount;
        }
        _batch.Load(step);
        var vocab = _executor.VocabSize;
        var rows = _batch.LogitRowCount * vocab;
        if (_logits.Length < rows)
            _logits = new float[rows];
        var width = _executor.EmbeddingLength;
        var pooledRows = _batch.PooledRowCount * width;
        if (_pooled.Length < pooledRows)
            _pooled = new float[pooledRows];
        var scrub = _scheduler.Blocks.TakeScrubBeforeStep();
        if (scrub.Count > 0)
        {
            var scrubStart = Stopwatch.GetTimestamp();
            _executor.ScrubKvBlocks(CollectionsMarshal.AsSpan(scrub));
            _scheduler.Blocks.ScrubbedBeforeStep();
            Counters.RecordScrubTime(Stopwatch.GetTimestamp() - scrubStart, busy: true);
        }
        var stepStart = Stopwatch.GetTimestamp();
        _executor.Execute(_batch, _logits.AsSpan(0, rows), _pooled.AsSpan(0, pooledRows));
        Counters.RecordStepTime(Stopwatch.GetTimestamp() - stepStart);
        _scheduler.Complete(step);
        Counters.RecordStep(step.TokenCount, step.Sequences.Count);

        var now = _options.Time.GetTimestamp();
        for (var s = 0; s < _batch.SequenceCount; s++)
        {
            if (_batch.PoolRow(s) is var poolRow and >= 0)
            {
                Pool((Choice)step.Sequences[s].Owner!, _pooled.AsSpan(poolRow * width, width), _batch.StartPosition(s) == 0);
                continue;
            }
            var row = _batch.LogitRow(s);
            if (row < 0)
                continue;
            var choice = (Choice)step.Sequences[s].Owner!;
            if (choice.Sequence.DraftCount > 0)
            {
                Verify(choice, _logits.AsSpan(row * vocab, _batch.LogitRowsOf(s) * vocab), now);
                continue;
            }
            var logits = _logits.AsSpan(row * vocab, vocab);
            if (choice.ForkPending)
            {
                // The other choices fork before choice 0 appends, so they share exactly the prompt.
                choice.ForkPending = false;
                var request = choice.Request;
                for (var c = 1; c < request.Sampling.N; c++)
                {
                    if (request.StoppedEarly.Contains(c))
                    {
                        request.Unfinished--;
                        continue;
                    }
                    var child = choice.Sequence.Fork(_nextSequenceId++, request.Sampling.MaxTokens);
                    _scheduler.Blocks.Fork(choice.Sequence, child);
                    _scheduler.AddRunning(child);
                    var fork = new Choice(request, c, child);
                    request.Choices.Add(fork);
                    Emit(fork, logits, now);
                }
                if (request.StoppedEarly.Contains(0))
                {
                    EndChoice(choice);
                    continue;
                }
            }
            Emit(choice, logits, now);
        }
        PublishCounters();
    }

    /// <summary>Adds a step's pooled states to the embedding input's vector; once its last token is computed, finishes it and frees its blocks.</summary>
    private void Pool(Choice choice, ReadOnlySpan<float> stepSum, bool fromStart)
    {
        var embedding = choice.Request.Embedding!;
        embedding.Add(stepSum, fromStart);
        var seq = choice.Sequence;
        if (seq.ComputedCount < seq.Count)
            return;
        embedding.Finish(seq.Count);
        EndChoice(choice);
    }

    private void Emit(Choice choice, ReadOnlySpan<float> logits, long now)
    {
        if (_emitter.Emit(choice, logits, now))
            EndChoice(choice);
    }

    /// <summary>
    /// Speculative verification: row i holds the target's logits after the last token and drafts 0..i−1. Each
    /// row emits one token exactly as a plain step would (penalties over the tokens so far, the constraint's
    /// mask, the seeded draw, logprobs, stop conditions); while the token equals the draft there, that draft is
    /// accepted and the next row is valid too; the first that differs (a correction), or the row after the
    /// last draft (a bonus), ends the step. For greedy this is "accept while the draft is the argmax"; for
    /// sampling it is the standard rejection scheme for a draft that is a point mass: the draft is kept with
    /// probability p(draft), and otherwise the token drawn is distributed as p without the draft,
    /// renormalised. It draws the same random numbers as decoding one token at a time, so a seeded request
    /// gives the same tokens with speculation as without.
    /// </summary>
    private void Verify(Choice choice, ReadOnlySpan<float> rows, long now)
    {
        var seq = choice.Sequence;
        var vocab = _executor.VocabSize;
        var drafted = seq.DraftCount;
        var accepted = 0;
        for (var i = 0; i <= drafted; i++)
        {
            var finished = _emitter.Emit(choice, rows.Slice(i * vocab, vocab), now);
            var match = i < drafted && seq.LastToken == seq.Drafts[i];
            if (match)
                accepted++;
            if (finished)
            {
                Counters.RecordSpeculation(drafted, accepted);
                EndChoice(choice);
                return;
            }
            if (!match)
                break;
        }
        Counters.RecordSpeculation(drafted, accepted);
        _scheduler.SettleDrafts(seq, accepted);
    }

    /// <summary>A waiting request takes n running slots once its choices fork.</summary>
    private static int SeatsFor(Sequence seq)
    {
        var choice = (Choice)seq.Owner!;
        return choice.ForkPending ? choice.Request.Sampling.N : 1;
    }

    /// <summary>Ends a request at once: frees every choice's blocks and completes its stream.</summary>
    private void Finish(RequestState request, Exception? error)
    {
        if (request.Done)
            return;
        request.Done = true;
        foreach (var choice in request.Choices)
        {
            _scheduler.Remove(choice.Sequence);
            _draftRunner?.Release(choice.Sequence);
        }
        request.Events.Writer.TryComplete(error);
    }

    private void FailAll(Exception error)
    {
        var requests = new HashSet<RequestState>();
        foreach (var seq in _scheduler.Running)
            requests.Add(((Choice)seq.Owner!).Request);
        foreach (var seq in _scheduler.Waiting)
            requests.Add(((Choice)seq.Owner!).Request);
        foreach (var request in requests)
            Finish(request, error);
    }

    /// <summary>Clears up to <paramref name="most"/> freed blocks that still hold KV; when idle, stops as soon as work arrives.</summary>
    private void Sweep(int most, bool yieldToArrivals)
    {
        var blocks = _scheduler.Blocks;
        var start = Stopwatch.GetTimestamp();
        var swept = 0;
        for (var i = 0; i < most && !(yieldToArrivals && !_arrivals.IsEmpty) && blocks.TryTakeSweep(out var block); i++)
        {
            _executor.ScrubKvBlocks([block]);
            blocks.Swept(block);
            swept++;
        }
        // Busy: the sweep after a step while requests wait for the next one (the idle sweep yields to arrivals).
        if (swept > 0) Counters.RecordScrubTime(Stopwatch.GetTimestamp() - start, busy: !yieldToArrivals && _scheduler.HasWork);
        _dirtyFreeBlocks = blocks.SweepBacklog;
        Counters.RecordScrubbed(blocks.ScrubbedBlocks);
    }

    private void PublishCounters()
    {
        var blocks = _scheduler.Blocks;
        Counters.RecordQueues(_scheduler.Running.Count, _scheduler.Waiting.Count, blocks.UsedBlocks,
            blocks.PrefixQueryTokens, blocks.PrefixHitTokens, _scheduler.Preemptions);
        Counters.RecordCachedBlocks(blocks.CachedBlocks);
        Counters.RecordTouchedBlocks(blocks.TouchedBlocks);
    }
}
