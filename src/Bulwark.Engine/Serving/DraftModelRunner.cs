using Bulwark.Engine.KvCache;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Serving.Scheduling;

namespace Bulwark.Engine.Serving;

/// <summary>
/// Draft-model speculation: a second, smaller model of the same vocabulary proposes each drafting sequence's
/// next tokens. Every target sequence that drafts has a shadow sequence here with its own blocks in the draft
/// model's paged KV cache, holding exactly the target's accepted tokens. Before each engine step the shadows
/// catch up on the tokens their targets gained (one batched pass for all of them, prefill chunks and single
/// tokens alike), then draft greedily one token per pass, k − 1 more batched passes; the shadows then take
/// their drafts back (their KV past the accepted tokens is rewritten next time). Drafts are deterministic, so
/// the target's verification keeps its output exact (greedy: the same tokens; sampling: the same distribution).
/// A sequence whose shadow cannot get blocks simply does not draft that step. Runs on the engine's step thread.
/// </summary>
internal sealed class DraftModelRunner : IDisposable
{
    /// <summary>Most tokens a shadow catches up in one step; a longer backlog (a long prompt) takes several steps, without drafts until done.</summary>
    public const int MaxCatchUpTokens = 512;

    private readonly IModelExecutor _executor;
    private readonly BlockPool _pool;
    private readonly int _blockSize;
    private readonly Dictionary<Sequence, Sequence> _shadows = new(ReferenceEqualityComparer.Instance);
    private readonly ScheduledStep _step = new();
    private readonly StepBatch _batch = new();
    private readonly List<Work> _work = new();
    private float[] _logits = [];
    private long _nextId;

    public DraftModelRunner(IModelExecutor executor, int blocks, int blockSize)
    {
        if (blocks < 1)
            throw new ArgumentOutOfRangeException(nameof(blocks), blocks, "the draft model's KV cache needs at least 1 block");
        _executor = executor;
        _blockSize = blockSize;
        _pool = new BlockPool(blocks);
        executor.AllocateKvCache(blocks, blockSize);
    }

    /// <summary>Sequences with a shadow now (each holds draft KV blocks).</summary>
    public int ShadowCount => _shadows.Count;

    public int FreeBlocks => _pool.FreeCount;

    public int Capacity => _pool.Capacity;

    /// <summary>One sequence to draft for: up to <see cref="MaxDrafts"/> tokens.</summary>
    public readonly record struct Request(Sequence Target, int MaxDrafts);

    private sealed class Work(Sequence target, Sequence shadow, int maxDrafts, int accepted)
    {
        public Sequence Target { get; } = target;
        public Sequence Shadow { get; } = shadow;
        public int MaxDrafts { get; } = maxDrafts;
        public int Accepted { get; } = accepted;
        public int Drafted { get; set; }
        public bool Done { get; set; }
    }

    /// <summary>Writes each request's drafts (possibly none) into its target's draft buffer and sets its count.</summary>
    public void Propose(IReadOnlyList<Request> requests)
    {
        _work.Clear();
        _step.Clear();
        foreach (var (target, maxDrafts) in requests)
        {
            target.SetDraftCount(0);
            var shadow = Sync(target);
            // Positions up to Count + k − 2 get KV (the last draft is never fed back).
            if (shadow is null || !EnsureBlocks(shadow, shadow.Count + maxDrafts - 1))
                continue;
            if (shadow.ComputedCount == shadow.Count)
                shadow.ComputedCount--; // nothing new since last time: recompute the last token for its logits
            var backlog = shadow.Count - shadow.ComputedCount;
            var count = Math.Min(backlog, MaxCatchUpTokens);
            _step.Add(shadow, count);
            _work.Add(new Work(target, shadow, maxDrafts, shadow.Count) { Done = count < backlog });
        }
        if (_work.Count == 0)
            return;
        Run();
        for (var i = 0; i < _work.Count; i++)
        {
            var w = _work[i];
            w.Shadow.ComputedCount += _step.Counts[i];
            if (!w.Done)
                Draft(w, _batch.LogitRow(i));
        }

        // Each further pass feeds every unfinished sequence its newest draft and drafts one more.
        while (true)
        {
            _step.Clear();
            foreach (var w in _work)
            {
                if (w.Done)
                    continue;
                w.Shadow.Append(w.Target.Drafts[w.Drafted - 1]);
                w.Shadow.ComputedCount = w.Shadow.Count - 1;
                _step.Add(w.Shadow, 1);
            }
            if (_step.IsEmpty)
                break;
            Run();
            var s = 0;
            foreach (var w in _work)
            {
                if (w.Done)
                    continue;
                w.Shadow.ComputedCount = w.Shadow.Count;
                Draft(w, _batch.LogitRow(s++));
            }
        }
        foreach (var w in _work)
            w.Shadow.TruncateTo(w.Accepted);
    }

    /// <summary>Frees the shadow of a target that ended, clearing its KV first (it holds the request's data).</summary>
    public void Release(Sequence target)
    {
        if (!_shadows.Remove(target, out var shadow))
            return;
        Free(shadow);
    }

    public void Dispose()
    {
        foreach (var shadow in _shadows.Values)
            Free(shadow);
        _shadows.Clear();
    }

    private void Free(Sequence shadow)
    {
        var blocks = shadow.Blocks.AsSpan();
        if (blocks.Length > 0)
            _executor.ScrubKvBlocks(blocks);
        foreach (var b in blocks)
            _pool.Release(b);
        shadow.Blocks.Clear();
    }

    /// <summary>The target's shadow holding exactly its tokens (the KV of what both share kept); null when no block is free for a new one.</summary>
    private Sequence? Sync(Sequence target)
    {
        var tokens = target.Tokens;
        if (!_shadows.TryGetValue(target, out var shadow))
        {
            shadow = new Sequence(_nextId++, tokens, 1, target.Priority, target.Arrival, default);
            _shadows.Add(target, shadow);
            return shadow;
        }
        var shared = Math.Min(shadow.Count, tokens.Length);
        var have = shadow.Tokens;
        var same = 0;
        while (same < shared && have[same] == tokens[same])
            same++;
        if (same < shadow.Count)
        {
            if (same < shadow.PromptLength)
            {
                // Cannot happen while targets only grow; start the shadow over rather than keep wrong KV.
                Release(target);
                return Sync(target);
            }
            shadow.TruncateTo(same);
        }
        for (var i = shadow.Count; i < tokens.Length; i++)
            shadow.Append(tokens[i]);
        return shadow;
    }

    /// <summary>Gives the shadow blocks for <paramref name="positions"/> positions; false (and nothing taken) when the pool has too few.</summary>
    private bool EnsureBlocks(Sequence shadow, int positions)
    {
        var needed = (positions + _blockSize - 1) / _blockSize - shadow.Blocks.Count;
        if (needed <= 0)
            return true;
        if (needed > _pool.FreeCount)
            return false;
        for (var i = 0; i < needed; i++)
            shadow.Blocks.Add(_pool.Allocate());
        return true;
    }

    private void Run()
    {
        _batch.Load(_step);
        var vocab = _executor.VocabSize;
        var rows = _batch.LogitRowCount * vocab;
        if (_logits.Length < rows)
            _logits = new float[rows];
        _executor.Execute(_batch, _logits.AsSpan(0, rows));
    }

    private void Draft(Work w, int row)
    {
        var vocab = _executor.VocabSize;
        var token = Sampler.ArgMax(_logits.AsSpan(row * vocab, vocab));
        var drafts = w.Target.DraftBuffer(w.MaxDrafts);
        drafts[w.Drafted++] = token;
        w.Target.SetDraftCount(w.Drafted);
        w.Done = w.Drafted == w.MaxDrafts;
    }
}
