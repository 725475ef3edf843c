namespace Bulwark.Engine.Serving;

/// <summary>
/// Lets the reader of a request's events end one of its n choices early (an output guard blocked
/// it) while the others go on. The engine removes the choice's sequence at the next step boundary,
/// which frees its KV blocks; events it wrote before that are still in the stream and are the
/// reader's to ignore. Thread-safe; a stop may come before the engine has picked the request up.
/// </summary>
public sealed class ChoiceControl
{
    private readonly Lock _gate = new();
    private readonly HashSet<int> _stopped = [];
    private Action<int>? _onStop;

    /// <summary>Ends choice <paramref name="index"/>; once per choice, later calls do nothing.</summary>
    public void Stop(int index)
    {
        Action<int>? onStop;
        lock (_gate)
        {
            if (!_stopped.Add(index)) return;
            onStop = _onStop;
        }
        onStop?.Invoke(index);
    }

    /// <summary>Whether <see cref="Stop"/> was called for <paramref name="index"/>.</summary>
    public bool IsStopped(int index)
    {
        lock (_gate) return _stopped.Contains(index);
    }

    /// <summary>Called once by the engine that runs the request; stops asked for before that are passed on now.</summary>
    internal void Attach(Action<int> onStop)
    {
        int[] early;
        lock (_gate)
        {
            if (_onStop is not null) throw new InvalidOperationException("a ChoiceControl serves one request");
            _onStop = onStop;
            early = [.. _stopped];
        }
        foreach (var index in early) onStop(index);
    }
}
