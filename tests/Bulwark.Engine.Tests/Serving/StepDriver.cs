using Bulwark.Engine.KvCache;
using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Reference;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Scheduling;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>A greedy generation's ids and the full logits row each id was chosen from.</summary>
internal sealed class GreedyRun
{
    public List<int> Ids { get; } = new();
    public List<float[]> Logits { get; } = new();
}

/// <summary>
/// Runs the real scheduler and an executor step by step with greedy decoding, keeping every
/// logits row: what the engine does, minus sampling and threads, so tests can compare logits.
/// </summary>
internal sealed class StepDriver
{
    private readonly IModelExecutor _executor;
    private readonly Scheduler _scheduler;
    private readonly StepBatch _batch = new();
    private readonly List<(int Step, Sequence Seq)> _arrivals = new();
    private float[] _logits = [];
    private long _nextId;

    public StepDriver(IModelExecutor executor, int blocks, int blockSize, bool prefixCaching, SchedulerOptions options)
    {
        _executor = executor;
        executor.AllocateKvCache(blocks, blockSize);
        _scheduler = new Scheduler(options, new BlockAllocator(blocks, blockSize, prefixCaching, executor.KvWindow));
    }

    public BlockAllocator Blocks => _scheduler.Blocks;

    public long Preemptions => _scheduler.Preemptions;

    /// <summary>Managed bytes each step's <see cref="IModelExecutor.Execute"/> allocated on the calling thread.</summary>
    public List<long> ExecuteAllocations { get; } = new();

    /// <summary>Queues a prompt to arrive before step <paramref name="atStep"/> of the next <see cref="RunToEnd"/>.</summary>
    public GreedyRun Add(int[] prompt, int maxTokens, int priority = 0, string tenant = "t", int atStep = 0)
    {
        var run = new GreedyRun();
        var seq = new Sequence(_nextId++, prompt, maxTokens, priority, _nextId, BlockHash.Root(tenant)) { Owner = (run, maxTokens) };
        _arrivals.Add((atStep, seq));
        return run;
    }

    /// <summary>Steps until every added prompt has generated its tokens.</summary>
    public void RunToEnd(int maxSteps = 100_000)
    {
        for (var step = 0; step < maxSteps; step++)
        {
            foreach (var (_, seq) in _arrivals.Where(a => a.Step == step))
                _scheduler.Add(seq);
            _arrivals.RemoveAll(a => a.Step == step);
            if (!_scheduler.HasWork && _arrivals.Count == 0)
                return;
            if (_scheduler.HasWork)
                Step();
        }
        throw new InvalidOperationException($"not finished after {maxSteps} steps");
    }

    private void Step()
    {
        var step = _scheduler.Schedule();
        _batch.Load(step);
        var vocab = _executor.VocabSize;
        var size = _batch.LogitRowCount * vocab;
        if (_logits.Length < size)
            _logits = new float[size];
        var before = GC.GetAllocatedBytesForCurrentThread();
        _executor.Execute(_batch, _logits.AsSpan(0, size));
        ExecuteAllocations.Add(GC.GetAllocatedBytesForCurrentThread() - before);
        _scheduler.Complete(step);
        var sequences = step.Sequences.ToArray();
        for (var s = 0; s < sequences.Length; s++)
        {
            var row = _batch.LogitRow(s);
            if (row < 0)
                continue;
            var seq = sequences[s];
            var (run, maxTokens) = ((GreedyRun, int))seq.Owner!;
            var logits = _logits.AsSpan(row * vocab, vocab).ToArray();
            var id = ArgMax(logits);
            run.Ids.Add(id);
            run.Logits.Add(logits);
            seq.Append(id);
            if (run.Ids.Count == maxTokens)
                _scheduler.Remove(seq);
        }
    }

    /// <summary>The same greedy generation through <see cref="LlamaSession"/>, one token at a time: the reference.</summary>
    public static GreedyRun Alone(LlamaModel model, int[] prompt, int maxTokens)
    {
        var run = new GreedyRun();
        using var session = new LlamaSession(model, prompt.Length + maxTokens);
        ReadOnlySpan<float> logits = default;
        for (var p = 0; p < prompt.Length; p++)
            logits = session.Forward(prompt[p], p);
        for (var i = 0; i < maxTokens; i++)
        {
            var copy = logits.ToArray();
            var id = ArgMax(copy);
            run.Ids.Add(id);
            run.Logits.Add(copy);
            if (i + 1 < maxTokens)
                logits = session.Forward(id, prompt.Length + i);
        }
        return run;
    }

    /// <summary>Ties go to the lowest id.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        var best = 0;
        for (var i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best])
                best = i;
        return best;
    }

    /// <summary>Same ids, and every logit within 1e-4 of the reference relative to the row's largest magnitude.</summary>
    public static void AssertSame(GreedyRun expected, GreedyRun actual, string label)
    {
        Assert.True(expected.Ids.SequenceEqual(actual.Ids),
            $"{label}: ids [{string.Join(", ", actual.Ids)}] differ from the reference [{string.Join(", ", expected.Ids)}]");
        for (var i = 0; i < expected.Logits.Count; i++)
        {
            var e = expected.Logits[i];
            var a = actual.Logits[i];
            var scale = Math.Max(1f, e.Max(MathF.Abs));
            for (var v = 0; v < e.Length; v++)
                Assert.True(MathF.Abs(e[v] - a[v]) <= 1e-4f * scale,
                    $"{label}: token {i} logit {v}: {a[v]} vs reference {e[v]}");
        }
    }
}
