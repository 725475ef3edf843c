using Bulwark.Engine.KvCache;

namespace Bulwark.Engine.Serving.Scheduling;

/// <summary>What one step computes: for each scheduled sequence, tokens [Start, Start + Count). Reused every step.</summary>
internal sealed class ScheduledStep
{
    public List<Sequence> Sequences { get; } = new();

    public List<int> Counts { get; } = new();

    /// <summary>Copy-on-write block copies to perform before the forward pass.</summary>
    public List<BlockCopy> Copies { get; } = new();

    /// <summary>Sequences preempted while building this step (already back in the waiting queue).</summary>
    public List<Sequence> Preempted { get; } = new();

    private readonly HashSet<Sequence> _members = new(ReferenceEqualityComparer.Instance);

    public int TokenCount { get; private set; }

    public bool Contains(Sequence seq) => _members.Contains(seq);

    public bool IsEmpty => Sequences.Count == 0;

    public void Add(Sequence seq, int count)
    {
        Sequences.Add(seq);
        _members.Add(seq);
        Counts.Add(count);
        TokenCount += count;
    }

    /// <summary>Adds <paramref name="extra"/> tokens (drafts) to the <paramref name="index"/>th sequence's span.</summary>
    public void Extend(int index, int extra)
    {
        Counts[index] += extra;
        TokenCount += extra;
    }

    public void Clear()
    {
        Sequences.Clear();
        _members.Clear();
        Counts.Clear();
        Copies.Clear();
        Preempted.Clear();
        TokenCount = 0;
    }
}
