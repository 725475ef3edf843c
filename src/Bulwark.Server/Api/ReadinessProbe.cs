using Bulwark.Engine.Serving.Sampling;
using Bulwark.Server.Admission;
using Bulwark.Server.Backends;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Api;

/// <summary>
/// <c>/ready</c>: the replica takes work (not isolated, not offline: <see cref="ServiceLevel"/>), a
/// model is loaded and a one-token greedy generation on the default model works. A passing result
/// is reused for <see cref="CacheFor"/> so frequent probes cost nothing; probes never queue
/// behind user traffic in admission, so a busy server is not reported as broken. A degradation
/// level other than normal is reported on a second line of a passing answer.
/// </summary>
public sealed class ReadinessProbe(ServedModels models, ServiceLevel serviceLevel, TimeProvider time)
{
    public static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private readonly SemaphoreSlim _one = new(1, 1);
    private long _passedAt = -1;

    public async Task<(bool Ready, string Detail)> CheckAsync(CancellationToken cancellationToken)
    {
        if (serviceLevel.NotReady() is { } refusing) return (false, refusing);
        var (ready, detail) = await ProbeAsync(cancellationToken);
        return ready && serviceLevel.Detail() is { } level ? (true, detail + "\n" + level) : (ready, detail);
    }

    private async Task<(bool Ready, string Detail)> ProbeAsync(CancellationToken cancellationToken)
    {
        if (Fresh()) return (true, "ok");
        await _one.WaitAsync(cancellationToken);
        try
        {
            if (Fresh()) return (true, "ok");
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(Timeout);
            if (models.List().Count == 0) return (false, "no model is loaded");
            using var lease = models.Acquire(null);
            var backend = lease.Backend;
            var request = new GenerationRequest
            {
                Model = backend.Model.Id,
                Prompt = PromptInput.FromText("ready"),
                Sampling = new SamplingParams { Temperature = 0, MaxTokens = 1 },
            };
            var events = 0;
            await foreach (var _ in backend.GenerateAsync(new BackendCall(request, backend.Prepare(request)), timeout.Token)) events++;
            if (events == 0) return (false, "the model produced no output for a one-token generation");
            Interlocked.Exchange(ref _passedAt, time.GetTimestamp());
            return (true, "ok");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (false, $"a one-token generation did not finish within {Timeout.TotalSeconds:0} s");
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return (false, $"a one-token generation failed: {e.GetType().Name}");
        }
        finally
        {
            _one.Release();
        }
    }

    private bool Fresh()
    {
        var at = Interlocked.Read(ref _passedAt);
        return at >= 0 && time.GetElapsedTime(at) < CacheFor;
    }
}
