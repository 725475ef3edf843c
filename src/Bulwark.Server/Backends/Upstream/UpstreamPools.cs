using Bulwark.Server.Observability;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Backends.Upstream;

/// <summary>
/// Every configured pool, started: endpoints checked once (which discovers the models they list),
/// each served model added to <see cref="ServedModels"/> as an <see cref="UpstreamBackend"/>,
/// and models an endpoint starts listing later added as the health checks find them. A served name
/// already taken (by the embedded model or an earlier pool) is left to its first owner, with a warning.
/// </summary>
public sealed class UpstreamPools : IAsyncDisposable
{
    private readonly List<UpstreamPool> _pools = [];
    private readonly ServedModels _models;
    private readonly UpstreamMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly HashSet<string> _warned = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    private UpstreamPools(ServedModels models, UpstreamMetrics metrics, TimeProvider time, ILogger log) =>
        (_models, _metrics, _time, _log) = (models, metrics, time, log);

    public IReadOnlyList<UpstreamPool> Pools => _pools;

    public static async Task<UpstreamPools> StartAsync(IReadOnlyDictionary<string, UpstreamPoolOptions> options, ServedModels models, ServerMetrics metrics,
        ILoggerFactory logs, TimeProvider time, CancellationToken ct)
    {
        var log = logs.CreateLogger("Bulwark.Upstreams");
        var pools = new UpstreamPools(models, new UpstreamMetrics(metrics), time, log);
        try
        {
            foreach (var (name, pool) in options.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                var started = new UpstreamPool(name, pool, pools._metrics, log);
                pools._pools.Add(started);
                started.Checked += () => pools.Register(started);
                await started.StartAsync(ct);
                pools.Register(started);
            }
            return pools;
        }
        catch
        {
            await pools.DisposeAsync();
            throw;
        }
    }

    /// <summary>Adds the pool's served models that are not served yet.</summary>
    private void Register(UpstreamPool pool)
    {
        lock (_gate)
        {
            foreach (var served in pool.ServedModels)
            {
                if (_models.Find(served) is { } existing)
                {
                    if (existing.Backend is UpstreamBackend { Pool: var owner } && owner == pool) continue;
                    if (_warned.Add(pool.Name + "\0" + served))
                        _log.LogWarning("upstream pool {Pool} lists '{Model}', which is already served by {Owner}; requests keep going there", pool.Name, served, existing.Info.Origin);
                    continue;
                }
                var backend = new UpstreamBackend(pool, served, _metrics, Lease, _time);
                _models.Add(backend, new ServedModelInfo($"upstream pool {pool.Name} ({pool.Endpoints.Count} endpoint(s))", null, 0, _time.GetUtcNow()));
                _log.LogInformation("serving '{Model}' from upstream pool {Pool}", served, pool.Name);
            }
        }
    }

    private ModelLease? Lease(string name) => _models.TryAcquire(name);

    public async ValueTask DisposeAsync()
    {
        foreach (var pool in _pools) await pool.DisposeAsync();
    }
}
