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

    /// <summary>
    /// Builds the next step, in three passes:
    /// <list type="number">
    /// <item>every decoding sequence gets its one token, in urgency order, before any prefill takes budget
    /// (when KV blocks run out the least urgent running sequence is preempted);</item>
    /// <item>prefill — chunks of running prompts (new, or recomputed after preemption) and admissions from the
    /// waiting queue — in one urgency order over both, so a more urgent arrival is never held behind a less
    /// urgent prompt already prefilling, and a prompt's last token (its first output) waits while a more urgent
    /// prompt ends the step unfinished. While any sequence decodes, all prefill together stays within
    /// <see cref="SchedulerOptions.MaxPrefillTokensWhileDecoding"/>;</item>
    /// <item>draft tokens of speculative sequences, in what is left of the budget and of that same cap.</item>
    /// </list>
    /// So while sequences decode, a step computes at most (decoders + the cap) tokens, and a decoding sequence
    /// gets a token every step unless it is preempted (or more sequences decode than the token budget holds).
    /// <paramref name="seatsFor"/> tells how many running slots a waiting sequence will take.
    /// </summary>
    public ScheduledStep Schedule(Func<Sequence, int>? seatsFor = null)
    {
        _step.Clear();
        var budget = _options.MaxBatchedTokens;
        // While any stream is decoding, prefill and drafts share its steps only in small amounts (see the option).
        var extraBudget = AnyDecoding() ? _options.MaxPrefillTokensWhileDecoding : int.MaxValue;

        for (var i = 0; i < _running.Count && budget > 0;)
        {
            var seq = _running[i];
            if (!IsDecoding(seq))
            {
                i++;
                continue;
            }
            if (!ReservePreempting(seq, 1, anyVictim: true))
                break; // it preempted itself: everything after it was preempted first
            _step.Add(seq, 1);
            budget--;
            i++;
        }

        // Admitting while preempting would only thrash: the freed blocks go to the running ones first.
        var admit = true;
        // Set once a more urgent prompt ends this step unfinished: nobody behind it gets a first token before it.
        var holdFirstTokens = false;
        var r = 0;
        while (budget > 0 && extraBudget > 0)
        {
            while (r < _running.Count && (IsDecoding(_running[r]) || _step.Contains(_running[r])))
                r++;
            var runningNext = r < _running.Count ? _running[r] : null;
            var waitingNext = admit && _step.Preempted.Count == 0 && _waiting.Count > 0 ? _waiting[0] : null;
            if (runningNext is null && waitingNext is null)
                break;
            var fromWaiting = waitingNext is not null && (runningNext is null || Compare(waitingNext, runningNext) < 0);
            var seq = fromWaiting ? waitingNext! : runningNext!;
            var hold = holdFirstTokens && seq.OutputCount == 0;
            int count;
            if (fromWaiting)
            {
                // A held arrival is not admitted at all (a partial first chunk would gain little and attach its
                // cached prefix for nothing); the most urgent waiting sequence that does not fit stops admission
                // too: nobody behind it goes before it, but prompts already running go on (they hold blocks that
                // it may be waiting for).
                count = hold ? 0 : TryAdmit(seq, Math.Min(budget, extraBudget), seatsFor);
                if (count == 0)
                {
                    admit = false;
                    continue;
                }
            }
            else
            {
                r++;
                var limit = ChunkOf(seq, Math.Min(budget, extraBudget), hold);
                if (limit <= 0)
                    continue;
                if (!ReservePreempting(seq, limit, anyVictim: false))
                    break; // only sequences in this step or more urgent ones hold the blocks: nothing less urgent may go first
                _step.Add(seq, limit);
                count = limit;
            }
            budget -= count;
            extraBudget -= count;
            if (seq.OutputCount == 0 && seq.ComputedCount + count < seq.Count)
                holdFirstTokens = true;
        }
        ScheduleDrafts(Math.Min(budget, extraBudget));
        return _step;
    }

    /// <summary>
    /// Reserves KV blocks for <paramref name="count"/> more tokens of a running sequence, preempting the least
    /// urgent running sequences until they fit. <paramref name="anyVictim"/> false spares sequences already in
    /// this step (a prefill never preempts a decode scheduled before it). False when the sequence preempted
    /// itself or no victim is left.
    /// </summary>
    private bool ReservePreempting(Sequence seq, int count, bool anyVictim)
    {
        while (!_blocks.TryReserve(seq, seq.ComputedCount + count, _step.Copies))
        {
            var victim = LeastUrgentVictim(anyVictim);
            if (victim is null || Compare(victim, seq) < 0)
                return false;
            Preempt(victim);
            if (ReferenceEquals(victim, seq))
                return false;
        }
        return true;
    }

    private Sequence? LeastUrgentVictim(bool anyVictim)
    {
        for (var i = _running.Count - 1; i >= 0; i--)
            if (anyVictim || !_step.Contains(_running[i]))
                return _running[i];
        return null;
    }

    /// <summary>
    /// The next prefill chunk of a sequence within <paramref name="limit"/> tokens; with <paramref name="hold"/>
    /// it stops short of the prompt's last token (the one that yields the first output token).
    /// </summary>
    private int ChunkOf(Sequence seq, int limit, bool hold)
    {
        var remaining = seq.Count - seq.ComputedCount;
        var count = Math.Min(Math.Min(remaining, _options.MaxPrefillChunk), limit);
        return hold ? Math.Min(count, remaining - 1) : count;
    }

    /// <summary>Admits the head of the waiting queue with a first chunk of at most <paramref name="limit"/> tokens; 0 when it does not fit.</summary>
    private int TryAdmit(Sequence seq, int limit, Func<Sequence, int>? seatsFor)
    {
        if (_running.Count + (seatsFor?.Invoke(seq) ?? 1) > _options.MaxSequences)
            return 0;
        if (seq.ComputedCount == 0 && seq.Blocks.Count == 0 && seq.UsesPrefixCache)
            _blocks.AttachCachedPrefix(seq);
        var count = ChunkOf(seq, limit, hold: false);
        if (!_blocks.TryReserve(seq, seq.ComputedCount + count, _step.Copies))
        {
            // Holding cached blocks while waiting could starve the running sequences.
            _blocks.Free(seq);
            return 0;
        }
        _waiting.RemoveAt(0);
        seq.Status = SequenceStatus.Running;
        InsertByUrgency(_running, seq);
        _step.Add(seq, count);
        return count;
    }

    /// <summary>
    /// Decoding sequences carry their draft tokens in what is left of the budget and the free blocks, after
    /// every decode, prefill and admission took its share: speculation never delays or preempts anyone.
    /// A sequence keeps as many of its drafts as fit (<see cref="Sequence.DraftCount"/> becomes that number).
    /// None in a step that preempted: the blocks freed are for the preempted sequences to come back.
    /// </summary>
    /// <param name="budget">Tokens left for drafts: of the step's budget and, while sequences decode, of the prefill cap.</param>
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

    /// <summary>
    /// Whether a running sequence's next step is a decode: it has output and all its tokens computed but the last.
    /// A prompt's last token is prefill (it yields the first token), as is a preempted sequence's recomputation.
    /// </summary>
    private static bool IsDecoding(Sequence seq) => seq.Count - seq.ComputedCount == 1 && seq.OutputCount > 0;

    /// <summary>Whether any running sequence decodes in the next step.</summary>
    private bool AnyDecoding()
    {
        foreach (var seq in _running)
            if (IsDecoding(seq))
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
