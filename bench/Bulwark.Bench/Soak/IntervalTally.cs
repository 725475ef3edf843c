using Bulwark.Bench.Http;

namespace Bulwark.Bench.Soak;

/// <summary>What the clients saw in one sampling interval: requests by outcome, latency of the completed ones, the first failure.</summary>
internal sealed record ClientInterval(int Completed, int Refused, int Disconnected, int Failed, Percentiles Latency, string? FirstFailure);

/// <summary>
/// Request outcomes since the last <see cref="Take"/>, from every client at once. A lock, not
/// lock-free counters: a few hundred requests a second at most, and latencies need a list anyway.
/// </summary>
internal sealed class IntervalTally
{
    private readonly Lock _gate = new();
    private readonly int[] _counts = new int[Enum.GetValues<SoakOutcome>().Length];
    private List<double> _latencies = new();
    private string? _firstFailure;

    public void Add(SoakResult result)
    {
        lock (_gate)
        {
            _counts[(int)result.Outcome]++;
            if (result.Outcome == SoakOutcome.Completed) _latencies.Add(result.Seconds);
            if (result.Outcome == SoakOutcome.Failed) _firstFailure ??= result.Error;
        }
    }

    /// <summary>The interval's figures; the tally starts over.</summary>
    public ClientInterval Take()
    {
        lock (_gate)
        {
            var interval = new ClientInterval(_counts[(int)SoakOutcome.Completed], _counts[(int)SoakOutcome.Refused], _counts[(int)SoakOutcome.Disconnected],
                _counts[(int)SoakOutcome.Failed], Percentiles.Of(_latencies), _firstFailure);
            Array.Clear(_counts);
            _latencies = new List<double>(_latencies.Count);
            _firstFailure = null;
            return interval;
        }
    }
}
