using Microsoft.Extensions.Hosting;

namespace Bulwark.Server.Admission;

/// <summary>
/// Graceful shutdown in two steps. When the host starts stopping, the admission queue stops
/// accepting (new requests get 503 with Retry-After; Kestrel stops taking connections) and
/// in-flight requests keep going. After the drain timeout (<c>Bulwark:Server:DrainTimeout</c>),
/// <see cref="HardStop"/> fires: every request still generating is cancelled and told why.
/// </summary>
public sealed class ShutdownDrain : IHostedService, IDisposable
{
    private readonly CancellationTokenSource _hardStop = new();
    private readonly AdmissionQueue _admission;
    private readonly TimeSpan _drainTimeout;
    private readonly TimeProvider _time;
    private ITimer? _timer;

    public ShutdownDrain(AdmissionQueue admission, TimeSpan drainTimeout, TimeProvider time)
    {
        _admission = admission;
        _drainTimeout = drainTimeout;
        _time = time;
    }

    /// <summary>Cancelled when the drain deadline has passed.</summary>
    public CancellationToken HardStop => _hardStop.Token;

    public bool IsDraining { get; private set; }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Called by the host first among stopping services (registered first), before Kestrel drains.</summary>
    public Task StopAsync(CancellationToken cancellationToken)
    {
        BeginDrain();
        return Task.CompletedTask;
    }

    public void BeginDrain()
    {
        if (IsDraining) return;
        IsDraining = true;
        _admission.StopAccepting();
        _timer = _time.CreateTimer(static s => ((CancellationTokenSource)s!).Cancel(), _hardStop, _drainTimeout, Timeout.InfiniteTimeSpan);
    }

    public void Dispose()
    {
        _timer?.Dispose();
        _hardStop.Dispose();
    }
}
