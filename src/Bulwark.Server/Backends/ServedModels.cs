using System.Diagnostics;
using Bulwark.Server.Api;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Backends;

/// <summary>What the server knows about a loaded model besides its backend.</summary>
/// <param name="Registered">The registry name and version it was loaded from; null for a plain path or the demo.</param>
/// <param name="MemoryBytes">What it holds in memory, as the memory budget counts it (weights on disk + its KV cache).</param>
public sealed record ServedModelInfo(string Origin, (string Name, string Version)? Registered, long MemoryBytes, DateTimeOffset LoadedAt);

/// <summary>
/// The models a running server serves, by id (the request's <c>model</c>). A request holds a
/// <see cref="ModelLease"/> on the model it resolved for its whole life, so a model that is
/// replaced or unloaded meanwhile finishes every request it started and is disposed only when
/// the last one ends. The first model loaded is the default, for routes without a <c>model</c>
/// field (TGI's); when it goes, the next oldest takes its place.
/// </summary>
public sealed class ServedModels : IDisposable
{
    private readonly object _gate = new();
    // Ordered by load time: index 0 is the default.
    private readonly List<ServedModel> _active = [];
    // Replaced or unloaded, still finishing requests: they still hold their memory.
    private readonly List<ServedModel> _retiring = [];
    private BackendStatistics _retiredTotals;
    private bool _disposed;

    public ServedModels() { }

    /// <summary>Serves <paramref name="backend"/> as the only (and default) model.</summary>
    public ServedModels(IGenerationBackend backend, ServedModelInfo? info = null) =>
        Add(backend, info ?? new ServedModelInfo("backend", null, 0, DateTimeOffset.UtcNow));

    /// <summary>The loaded models, the default first.</summary>
    public IReadOnlyList<ServedModel> List()
    {
        lock (_gate) return [.. _active];
    }

    /// <summary>Models replaced or unloaded that still finish requests.</summary>
    public IReadOnlyList<ServedModel> Retiring()
    {
        lock (_gate) return [.. _retiring];
    }

    /// <summary>Memory held by every model still in memory, retiring ones included.</summary>
    public long MemoryBytes
    {
        get { lock (_gate) return _active.Concat(_retiring).Sum(m => m.Info.MemoryBytes); }
    }

    public ServedModel? Find(string id)
    {
        lock (_gate) return _active.Find(m => m.Id == id);
    }

    /// <summary>
    /// Leases the model a request names (<paramref name="id"/> null: the default). Throws the
    /// OpenAI-shaped 404 <c>model_not_found</c> when no such model is loaded, or when
    /// <paramref name="visible"/> (the caller's model list) hides it: a model a key may not use
    /// answers exactly as one that does not exist, and the message lists only models it may use.
    /// </summary>
    public ModelLease Acquire(string? id, Func<string, bool>? visible = null)
    {
        lock (_gate)
        {
            var model = id is null ? _active.FirstOrDefault() : _active.Find(m => m.Id == id);
            if (model is null || (visible is not null && !visible(model.Id)))
                throw NotFound(id, visible);
            return model.AddLease();
        }
    }

    /// <summary>The 404 for a model that is not served (or not to this caller).</summary>
    public ApiException NotFound(string? id, Func<string, bool>? visible = null)
    {
        List<ServedModel> shown;
        lock (_gate) shown = visible is null ? [.. _active] : _active.FindAll(m => visible(m.Id));
        var loaded = shown.Count == 0 ? "no model is available to this key" : "this server serves " + string.Join(", ", shown.Take(10).Select(m => $"'{m.Id}'"));
        var message = id is null ? "No model is loaded; load one with POST /admin/models/{name}/load."
            : $"The model '{Truncate(id)}' does not exist{(visible is null ? "" : " or this key may not use it")}; {loaded}.";
        return new ApiException(StatusCodes.Status404NotFound, message, "invalid_request_error", "model", "model_not_found");
    }

    /// <summary>Leases the model <paramref name="id"/> when it is loaded; null otherwise.</summary>
    public ModelLease? TryAcquire(string id)
    {
        lock (_gate) return _active.Find(m => m.Id == id)?.AddLease();
    }

    /// <summary>Starts serving a model under its backend's id.</summary>
    /// <exception cref="InvalidOperationException">A model with that id is already loaded.</exception>
    public ServedModel Add(IGenerationBackend backend, ServedModelInfo info)
    {
        var model = new ServedModel(backend, info, this);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_active.Exists(m => m.Id == model.Id))
                throw new InvalidOperationException($"a model with id '{model.Id}' is already loaded");
            _active.Add(model);
        }
        return model;
    }

    /// <summary>
    /// Atomically puts <paramref name="backend"/> in the place of the loaded model with the same id:
    /// requests that resolve the id from now on get the new one; the old one finishes the
    /// requests it holds and is then disposed (<see cref="ServedModel.Drained"/>).
    /// </summary>
    /// <returns>The replaced model, retiring.</returns>
    /// <exception cref="InvalidOperationException">No model with that id is loaded.</exception>
    public ServedModel Replace(IGenerationBackend backend, ServedModelInfo info)
    {
        var model = new ServedModel(backend, info, this);
        ServedModel old;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var at = _active.FindIndex(m => m.Id == model.Id);
            if (at < 0) throw new InvalidOperationException($"no model with id '{model.Id}' is loaded");
            old = _active[at];
            _active[at] = model;
            _retiring.Add(old);
        }
        old.Retire();
        return old;
    }

    /// <summary>Stops routing to <paramref name="id"/>; it is disposed once its requests finish. Null when it was not loaded.</summary>
    public ServedModel? Remove(string id)
    {
        ServedModel? old;
        lock (_gate)
        {
            old = _active.Find(m => m.Id == id);
            if (old is null) return null;
            _active.Remove(old);
            _retiring.Add(old);
        }
        old.Retire();
        return old;
    }

    /// <summary>
    /// The engines' counters summed over every model in memory; counts since start keep what
    /// disposed models counted, so they never go down.
    /// </summary>
    public BackendStatistics Statistics
    {
        get
        {
            ServedModel[] all;
            BackendStatistics sum;
            lock (_gate)
            {
                all = [.. _active, .. _retiring];
                sum = _retiredTotals;
            }
            var kvModels = 0;
            var kv = 0.0;
            foreach (var m in all)
            {
                if (m.IsDisposed) continue;
                var s = m.Backend.Statistics;
                sum = Add(sum, s);
                kv += s.KvCacheUsage;
                kvModels++;
            }
            return sum with { KvCacheUsage = kvModels == 0 ? 0 : kv / kvModels };
        }
    }

    /// <summary>Disposes every model at once (server shutdown: requests still running end with an error).</summary>
    public void Dispose()
    {
        ServedModel[] all;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            all = [.. _active, .. _retiring];
            _active.Clear();
        }
        foreach (var m in all) m.DisposeNow();
    }

    internal void OnDisposed(ServedModel model, BackendStatistics last)
    {
        lock (_gate)
        {
            _retiring.Remove(model);
            // Levels (running, waiting, KV usage) of a gone model are zero; its counts since start stay.
            _retiredTotals = Add(_retiredTotals, new BackendStatistics(0, 0, 0, last.PrefixCacheQueries, last.PrefixCacheHits, last.Preemptions, last.KvBlocksScrubbed,
                last.KvScrubSecondsBusy, last.KvScrubSecondsIdle,
                last.SpeculativeDraftTokens, last.SpeculativeAcceptedTokens, last.SpeculativeVerifications));
        }
    }

    private static BackendStatistics Add(BackendStatistics a, BackendStatistics b) => new(
        a.RunningSequences + b.RunningSequences, a.WaitingSequences + b.WaitingSequences, a.KvCacheUsage,
        a.PrefixCacheQueries + b.PrefixCacheQueries, a.PrefixCacheHits + b.PrefixCacheHits, a.Preemptions + b.Preemptions,
        a.KvBlocksScrubbed + b.KvBlocksScrubbed, a.KvScrubSecondsBusy + b.KvScrubSecondsBusy, a.KvScrubSecondsIdle + b.KvScrubSecondsIdle,
        a.SpeculativeDraftTokens + b.SpeculativeDraftTokens, a.SpeculativeAcceptedTokens + b.SpeculativeAcceptedTokens, a.SpeculativeVerifications + b.SpeculativeVerifications,
        a.KvBlocks + b.KvBlocks, a.KvBlocksTouched + b.KvBlocksTouched);

    private static string Truncate(string s) => s.Length <= 64 ? s : s[..64] + "...";
}

/// <summary>One loaded model: its backend, what it was loaded from, and the requests holding it.</summary>
public sealed class ServedModel
{
    private readonly ServedModels _owner;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _sync = new();
    private int _leases;
    private bool _retired;
    private int _disposed;

    internal ServedModel(IGenerationBackend backend, ServedModelInfo info, ServedModels owner)
    {
        Backend = backend;
        Info = info;
        _owner = owner;
    }

    public string Id => Backend.Model.Id;
    public IGenerationBackend Backend { get; }
    public ServedModelInfo Info { get; }

    /// <summary>Requests holding this model now.</summary>
    public int InFlight => Volatile.Read(ref _leases);

    /// <summary>Completes when the model, retired, has finished its last request and was disposed.</summary>
    public Task Drained => _drained.Task;

    internal bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    // Called under the owner's lock, so a lease is never handed out after Retire saw zero.
    internal ModelLease AddLease()
    {
        Debug.Assert(!_retired);
        Interlocked.Increment(ref _leases);
        return new ModelLease(this);
    }

    internal void Retire()
    {
        lock (_sync)
        {
            _retired = true;
            if (_leases != 0) return;
        }
        DisposeNow();
    }

    internal void Release()
    {
        lock (_sync)
        {
            var left = Interlocked.Decrement(ref _leases);
            Debug.Assert(left >= 0);
            if (left != 0 || !_retired) return;
        }
        DisposeNow();
    }

    internal void DisposeNow()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        var last = Backend.Statistics;
        try
        {
            (Backend as IDisposable)?.Dispose();
        }
        finally
        {
            _owner.OnDisposed(this, last);
            _drained.TrySetResult();
        }
    }
}

/// <summary>A request's hold on a <see cref="ServedModel"/>: while any is held, the model stays in memory.</summary>
public sealed class ModelLease(ServedModel model) : IDisposable
{
    private int _released;

    public ServedModel Model { get; } = model;
    public IGenerationBackend Backend => Model.Backend;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) Model.Release();
    }
}
