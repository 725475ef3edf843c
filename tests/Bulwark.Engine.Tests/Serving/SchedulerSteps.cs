using Bulwark.Engine.Serving.Scheduling;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>Driving a bare <see cref="Scheduler"/> step by step, as the engine does, for the scheduler's tests.</summary>
internal static class SchedulerSteps
{
    /// <summary>Runs one step and appends a token to every sequence whose tokens are all computed (as the engine does).</summary>
    public static ScheduledStep Step(Scheduler scheduler)
    {
        var step = scheduler.Schedule();
        scheduler.Complete(step);
        foreach (var seq in step.Sequences)
            if (seq.ComputedCount == seq.Count) seq.Append(1);
        return step;
    }

    /// <summary>The tokens <paramref name="seq"/> computes in <paramref name="step"/>; 0 when it is not in it.</summary>
    public static int CountOf(ScheduledStep step, Sequence seq)
    {
        for (var i = 0; i < step.Sequences.Count; i++)
            if (ReferenceEquals(step.Sequences[i], seq)) return step.Counts[i];
        return 0;
    }
}
