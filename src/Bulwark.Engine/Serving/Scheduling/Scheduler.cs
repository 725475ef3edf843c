using System.Diagnostics;

namespace Bulwark.Engine.Serving.Scheduling;

/// <summary>
/// Continuous batching: every step packs the running sequences' next tokens (one per decoding
/// sequence, a chunk per prefilling one) and then admits waiting sequences, all under the token
/// budget and the sequence limit. When KV blocks run out the least urgent running sequence is
/// preempted by recompute: its blocks are freed and it waits again with its tokens intact.
/// </summary>
/// <remarks>Single-threaded: only the engine's step loop calls it.</remarks>
internal sealed class Scheduler
{
    private readonly SchedulerOptions _options;
    private readonly BlockAllocator _blocks;
    // Both kept in urgency order (priority, arrival, id): the head runs first, the tail is preempted first.
    private readonly List<Sequence> _waiting = new();
    private readonly List<Sequence> _running = new();
    private readonly ScheduledStep _step = new();

    public Scheduler(SchedulerOptions options, BlockAllocator blocks)
    {
        options.Validate();
        _options = options;
        _blocks = blocks;
    }

    public IReadOnlyList<Sequence> Waiting => _waiting;

    public IReadOnlyList<Sequence> Running => _running;

    public BlockAllocator Blocks => _blocks;

    public long Preemptions { get; private set; }

    public bool HasWork => _waiting.Count > 0 || _running.Count > 0;

    /// <summary>Queues a sequence. <paramref name="seatsReserved"/> counts its future forks (n choices) against the sequence limit.</summary>
    public void Add(Sequence seq)
    {
        Debug.Assert(seq.Blocks.Count == 0);
        seq.Status = SequenceStatus.Waiting;
        InsertByUrgency(_waiting, seq);
    }

    /// <summary>Adds a fork of a running sequence straight into the running queue (its blocks are shared).</summary>
    public void AddRunning(Sequence seq)
    {
        seq.Status = SequenceStatus.Running;
        InsertByUrgency(_running, seq);
    }

    /// <summary>Builds the next step. <paramref name="seatsFor"/> tells how many running slots a waiting sequence will take.</summary>
    public ScheduledStep Schedule(Func<Sequence, int>? seatsFor = null)
    {
        _step.Clear();
        var budget = _options.MaxBatchedTokens;
        // While any stream is decoding, prefill shares its steps only in small amounts (see the option).
        var prefillBudget = AnyDecoding() ? _options.MaxPrefillTokensWhileDecoding : int.MaxValue;

        for (var i = 0; i < _running.Count && budget > 0;)
        {
            var seq = _running[i];
            var remaining = seq.Count - seq.ComputedCount;
            var count = Math.Min(Math.Min(remaining, budget), _options.MaxPrefillChunk);
            if (remaining > 1)
            {
                count = Math.Min(count, prefillBudget);
                if (count == 0)
                {
                    i++;
                    continue;
                }
            }
            Debug.Assert(count > 0, "a running sequence always has a token to compute");
            var preemptedSelf = false;
            while (!_blocks.TryReserve(seq, seq.ComputedCount + count, _step.Copies))
            {
                var victim = _running[^1];
                Preempt(victim);
                if (ReferenceEquals(victim, seq))
                {
                    preemptedSelf = true;
                    break;
                }
            }
            if (preemptedSelf)
                break;
            _step.Add(seq, count);
            budget -= count;
            if (remaining > 1) prefillBudget -= count;
            i++;
        }

        // Admitting while preempting would only thrash: the freed blocks go to the running ones first.
        if (_step.Preempted.Count == 0)
        {
            while (_waiting.Count > 0 && budget > 0 && prefillBudget > 0)
            {
                var seq = _waiting[0];
                if (_running.Count + (seatsFor?.Invoke(seq) ?? 1) > _options.MaxSequences)
                    break;
                if (seq.ComputedCount == 0 && seq.Blocks.Count == 0 && seq.UsesPrefixCache)
                    _blocks.AttachCachedPrefix(seq);
                var count = Math.Min(Math.Min(Math.Min(seq.Count - seq.ComputedCount, budget), _options.MaxPrefillChunk), prefillBudget);
                if (!_blocks.TryReserve(seq, seq.ComputedCount + count, _step.Copies))
                {
                    // Holding cached blocks while waiting could starve the running sequences.
                    _blocks.Free(seq);
                    break;
                }
                _waiting.RemoveAt(0);
                seq.Status = SequenceStatus.Running;
                InsertByUrgency(_running, seq);
                _step.Add(seq, count);
                budget -= count;
                prefillBudget -= count;
            }
        }
        ScheduleDrafts(budget);
        return _step;
    }

    /// <summary>
    /// Decoding sequences carry their draft tokens in what is left of the budget and the free blocks, after
    /// every decode, prefill and admission took its share: speculation never delays or preempts anyone.
    /// A sequence keeps as many of its drafts as fit (<see cref="Sequence.DraftCount"/> becomes that number).
    /// None in a step that preempted: the blocks freed are for the preempted sequences to come back.
    /// </summary>
    private void ScheduleDrafts(int budget)
    {
        if (_step.Preempted.Count > 0)
            budget = 0;
        for (var i = 0; i < _step.Sequences.Count; i++)
        {
            var seq = _step.Sequences[i];
            if (seq.DraftCount == 0)
                continue;
            var drafts = 0;
            if (_step.Counts[i] == 1 && seq.Count - seq.ComputedCount == 1)
            {
                drafts = Math.Min(seq.DraftCount, Math.Min(budget, _options.MaxPrefillChunk - 1));
                while (drafts > 0 && !_blocks.TryReserve(seq, seq.ComputedCount + 1 + drafts, _step.Copies))
                    drafts--;
            }
            seq.SetDraftCount(drafts);
            _step.Extend(i, drafts);
            budget -= drafts;
        }
    }

    /// <summary>Whether a running sequence has all its tokens computed but the last (its next step is a decode).</summary>
    private bool AnyDecoding()
    {
        foreach (var seq in _running)
            if (seq.Count - seq.ComputedCount == 1)
                return true;
        return false;
    }

    /// <summary>Records that the step computed its tokens; publishes blocks that became full to the prefix cache.</summary>
    public void Complete(ScheduledStep step)
    {
        for (var i = 0; i < step.Sequences.Count; i++)
        {
            var seq = step.Sequences[i];
            // Draft positions' KV is written but counts only once the drafts are accepted (SettleDrafts).
            seq.ComputedCount += step.Counts[i] - seq.DraftCount;
            if (seq.UsesPrefixCache) _blocks.PublishFullBlocks(seq);
            _blocks.ReleaseOutsideWindow(seq);
        }
    }

    /// <summary>
    /// After a verification step: the first <paramref name="accepted"/> drafts were appended as tokens and their
    /// KV stands; the rest is rolled back (blocks past the sequence's tokens are released), and only then are
    /// full blocks published, so the prefix cache never covers a rejected draft.
    /// </summary>
    public void SettleDrafts(Sequence seq, int accepted)
    {
        Debug.Assert(accepted <= seq.DraftCount && seq.ComputedCount + accepted <= seq.Count);
        seq.ComputedCount += accepted;
        seq.SetDraftCount(0);
        _blocks.ReleaseBeyond(seq, seq.Count);
        _blocks.PublishFullBlocks(seq);
        _blocks.ReleaseOutsideWindow(seq);
    }

    /// <summary>Ends a sequence (finished or cancelled) wherever it is, freeing its blocks at once.</summary>
    public void Remove(Sequence seq)
    {
        if (seq.Status == SequenceStatus.Finished)
            return;
        var list = seq.Status == SequenceStatus.Running ? _running : _waiting;
        var removed = list.Remove(seq);
        Debug.Assert(removed);
        _blocks.Free(seq);
        seq.Status = SequenceStatus.Finished;
    }

    /// <summary>Frees a running sequence's KV and sends it back to wait; it will recompute its tokens.</summary>
    public void Preempt(Sequence seq)
    {
        Debug.Assert(seq.Status == SequenceStatus.Running);
        _running.Remove(seq);
        _blocks.Free(seq);
        seq.Preemptions++;
        Preemptions++;
        _step.Preempted.Add(seq);
        Add(seq);
    }

    private static void InsertByUrgency(List<Sequence> list, Sequence seq)
    {
        var index = list.Count;
        while (index > 0 && Compare(list[index - 1], seq) > 0)
            index--;
        list.Insert(index, seq);
    }

    private static int Compare(Sequence a, Sequence b)
    {
        var c = a.Priority.CompareTo(b.Priority);
        if (c != 0) return c;
        c = a.Arrival.CompareTo(b.Arrival);
        return c != 0 ? c : a.Id.CompareTo(b.Id);
    }
}
