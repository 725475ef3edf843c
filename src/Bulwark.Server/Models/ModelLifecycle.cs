using Bulwark.Server.Api;
using Bulwark.Server.Audit;
using Bulwark.Server.Backends;
using Bulwark.Server.Observability;
using Bulwark.Server.Redaction;
using Bulwark.Server.Registry;
using Bulwark.Server.Requests;
using Bulwark.Server.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Models;

/// <summary>Turns a resolved model into a backend (the embedded engine; tests pass small ones).</summary>
public delegate IGenerationBackend BackendLoader(ModelSource source, ServeOptions options);

/// <summary>
/// Loads, replaces and unloads registered models in a running server. Every load goes through
/// the same checks as <c>serve --model NAME</c> (manifest verified, signature when required, the
/// quantization gate) and the memory budget before a byte of weights is mapped; the served models
/// change only once the new one is fully loaded, so a refused or failed load leaves them as they
/// were. Operations run one at a time. Each is audited with the admin key that asked, and each
/// loaded registered model has a <see cref="ModelFileWatcher"/>.
/// </summary>
public sealed class ModelLifecycle : IAsyncDisposable
{
    private readonly ServedModels _models;
    private readonly ModelRegistry _registry;
    private readonly BackendLoader _loader;
    private readonly ServeOptions _serve;
    private readonly ServerMetrics _metrics;
    private readonly AuditWriter? _audit;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _one = new(1, 1);
    private readonly Dictionary<string, ModelFileWatcher> _watchers = new(StringComparer.Ordinal);
    private readonly Func<string, string, CancellationToken, Task>? _announce;

    /// <param name="announce">Tells the other replicas a model's new serving version (the incident log); null on a lone server.</param>
    public ModelLifecycle(ServedModels models, ModelRegistry registry, BackendLoader loader, ServeOptions serve,
        ServerMetrics metrics, AuditWriter? audit, ILogger logger, TimeProvider time, Func<string, string, CancellationToken, Task>? announce = null)
    {
        (_models, _registry, _loader, _serve, _metrics, _audit, _logger, _time) = (models, registry, loader, serve, metrics, audit, logger, time);
        _announce = announce;
    }

    /// <summary>How often a loaded registered model's files are re-hashed even when no change notification came.</summary>
    public static readonly TimeSpan VerifyPeriod = TimeSpan.FromMinutes(5);

    public ServedModels Models => _models;

    public ModelRegistry Registry => _registry;

    /// <summary>The memory budget in bytes (null: none).</summary>
    public long? MemoryBudget => _serve.ModelMemoryBudgetBytes;

    /// <summary>The watcher over a loaded registered model's files (null for a plain path, the demo, or a model not loaded).</summary>
    public ModelFileWatcher? WatcherOf(string id)
    {
        lock (_watchers) return _watchers.GetValueOrDefault(id);
    }

    /// <summary>Starts watching the models loaded at start-up.</summary>
    public void Adopt(ServedModel model)
    {
        if (model.Info.Registered is { } registered) Watch(model.Id, registered.Name, registered.Version);
    }

    /// <summary>Loads version <paramref name="version"/> (null: the registry's current one) of a registered model that is not loaded yet.</summary>
    public async Task<ServedModel> LoadAsync(string name, string? version, string keyId, CancellationToken ct)
    {
        Valid(name, version);
        await _one.WaitAsync(ct);
        try
        {
            if (_models.Find(name) is { } loaded)
                throw Conflict($"model '{name}' is already loaded ({Describe(loaded)}); switch versions with POST /admin/models/{name}/use", "model_already_loaded");
            var (backend, info) = await LoadVerifiedAsync(name, version, keyId, ct);
            var model = _models.Add(backend, info);
            Watch(name, name, info.Registered!.Value.Version);
            Audit("model.loaded", keyId, name, info.Registered.Value.Version, info.Origin);
            return model;
        }
        finally
        {
            _one.Release();
        }
    }

    /// <summary>Stops serving a loaded model; it finishes the requests it holds, then is disposed.</summary>
    public async Task<ServedModel> UnloadAsync(string id, string keyId, CancellationToken ct)
    {
        await _one.WaitAsync(ct);
        try
        {
            var removed = _models.Remove(id) ?? throw NotLoaded(id);
            await StopWatchingAsync(id);
            Audit("model.unloaded", keyId, id, removed.Info.Registered?.Version, $"{removed.InFlight} requests finishing on it");
            Drain(removed);
            return removed;
        }
        finally
        {
            _one.Release();
        }
    }

    /// <summary>
    /// Makes <paramref name="version"/> the serving version: loads it verified, records it as the
    /// registry's current version, then swaps it in atomically. The version it replaces finishes
    /// its requests and is disposed. Loads the model when it was not loaded.
    /// </summary>
    /// <returns>The model now serving and the one it replaced (null when none was loaded).</returns>
    public async Task<(ServedModel Serving, ServedModel? Replaced)> UseAsync(string name, string version, string keyId, CancellationToken ct)
    {
        Valid(name, version);
        await _one.WaitAsync(ct);
        try
        {
            var switched = await SwitchAsync(name, version, keyId, "model.current", () => _registry.SetCurrent(name, version), ct);
            await AnnounceAsync(name, version);
            return switched;
        }
        finally
        {
            _one.Release();
        }
    }

    /// <summary>
    /// Switches to the version another replica now serves (<see cref="ModelServingFollower"/>): as
    /// <see cref="UseAsync"/>, but only when the model is loaded here and serves another version.
    /// </summary>
    /// <exception cref="ApiException">The version cannot be loaded here; nothing changed.</exception>
    public async Task FollowAsync(string name, string version, string replica, CancellationToken ct)
    {
        Valid(name, version);
        await _one.WaitAsync(ct);
        try
        {
            if (_models.Find(name) is not { } loaded || loaded.Info.Registered?.Version == version) return;
            await SwitchAsync(name, version, null, "model.current", () => _registry.SetCurrent(name, version), ct, $"following replica {replica}");
        }
        finally
        {
            _one.Release();
        }
    }

    /// <summary>Audits a switch another replica made that this one could not follow.</summary>
    public void AuditFollowFailed(string name, string version, string replica, string why) =>
        Audit("model.follow_failed", null, name, version, $"replica {replica} serves {version}; this replica keeps what it has: {why}");

    private async Task AnnounceAsync(string name, string version)
    {
        if (_announce is null) return;
        try
        {
            await _announce(name, version, CancellationToken.None);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The switch here stands; the other replicas keep their version until told again.
            _logger.LogError("Model {Model} now serves {Version} here, but the other replicas could not be told (incident log: {Error}); repeat the call to retry",
                name, version, e.Message);
        }
    }

    /// <summary>Goes back to the version that served before the current one, in one call: loaded first, then recorded and swapped in.</summary>
    public async Task<(ServedModel Serving, ServedModel? Replaced)> RollbackAsync(string name, string keyId, CancellationToken ct)
    {
        Valid(name, null);
        await _one.WaitAsync(ct);
        try
        {
            var state = Guard(() => _registry.State(name));
            if (state.History.Count == 0)
                throw Conflict($"model '{name}' has no earlier serving version to roll back to (current: {state.Current ?? "none"})", "no_previous_version");
            var previous = state.History[^1];
            var result = SwitchAsync(name, previous, keyId, "model.rollback", () =>
            {
                var rolled = _registry.Rollback(name);
                // Another writer (the CLI) moved the history meanwhile: record what was loaded, not what it chose.
                if (rolled.Current != previous) _registry.SetCurrent(name, previous);
            }, ct);
            var switched = await result;
            await AnnounceAsync(name, previous);
            return switched;
        }
        finally
        {
            _one.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        ModelFileWatcher[] watchers;
        lock (_watchers)
        {
            watchers = [.. _watchers.Values];
            _watchers.Clear();
        }
        foreach (var w in watchers) await w.DisposeAsync();
    }

    private async Task<(ServedModel, ServedModel?)> SwitchAsync(string name, string version, string? keyId, string kind, Action record, CancellationToken ct, string? why = null)
    {
        var note = why is null ? "" : $" ({why})";
        var old = _models.Find(name);
        if (old?.Info.Registered?.Version == version)
        {
            // Already serving it: only the registry's record changes (no second copy in memory).
            Guard(() => { record(); return 0; });
            Audit(kind, keyId, name, version, $"{version} -> {version} (already loaded){note}");
            return (old, null);
        }
        var (backend, info) = await LoadVerifiedAsync(name, version, keyId, ct);
        try
        {
            Guard(() => { record(); return 0; });
        }
        catch
        {
            (backend as IDisposable)?.Dispose();
            throw;
        }
        var from = old?.Info.Registered?.Version ?? (old is null ? "not loaded" : old.Info.Origin);
        ServedModel serving;
        if (old is null) serving = _models.Add(backend, info);
        else
        {
            _models.Replace(backend, info);
            serving = _models.Find(name)!;
            Drain(old);
        }
        await StopWatchingAsync(name);
        Watch(name, name, version);
        Audit(kind, keyId, name, version, $"{from} -> {version}" + (old is null ? "" : $"; {old.InFlight} requests finishing on {from}") + note);
        return (serving, old);
    }

    /// <summary>Verifies, gates, budgets and loads one registered version. Nothing is served yet.</summary>
    private async Task<(IGenerationBackend, ServedModelInfo)> LoadVerifiedAsync(string name, string? version, string? keyId, CancellationToken ct)
    {
        if (!Guard(() => _registry.Names()).Contains(name, StringComparer.Ordinal))
            throw new ApiException(StatusCodes.Status404NotFound,
                $"'{Shown(name)}' is not a registered model (register it with: bulwark models add NAME --from PATH)", "invalid_request_error", "name", "model_not_registered");
        ModelManifest manifest;
        string path;
        try
        {
            (manifest, path) = await _registry.ResolveVerifiedAsync(name, version, _serve.RequireSignature, ct);
        }
        catch (VerificationFailedException e)
        {
            _metrics.ModelTamperAlerts.Add(1, new KeyValuePair<string, object?>("model", name));
            Audit("model.tampered", keyId, name, version, "load refused: " + string.Join("; ", e.Problems));
            throw new ApiException(StatusCodes.Status409Conflict, e.Message, "invalid_request_error", "version", "model_verification_failed");
        }
        catch (QuantizationGateException e)
        {
            Audit("model.load_refused", keyId, name, version, e.Message);
            throw new ApiException(StatusCodes.Status409Conflict, e.Message, "invalid_request_error", "version", "quantization_gate");
        }
        catch (Exception e) when (e is RegistryException or IOException)
        {
            throw new ApiException(StatusCodes.Status404NotFound, e.Message, "invalid_request_error", "version", "version_not_found");
        }

        var need = manifest.TotalBytes + _serve.KvCacheMemoryBytes;
        if (MemoryBudget is { } budget && _models.MemoryBytes + need > budget)
        {
            var message = $"loading model '{name}' version {manifest.Version} needs about {Size(need)} (weights {Size(manifest.TotalBytes)} + KV cache {Size(_serve.KvCacheMemoryBytes)}); " +
                          $"the models in memory hold {Size(_models.MemoryBytes)} of the {Size(budget)} budget ({ServeOptions.Section}:ModelMemoryBudget). Unload a model first.";
            Audit("model.load_refused", keyId, name, manifest.Version, message);
            throw new ApiException(StatusCodes.Status409Conflict, message, "invalid_request_error", null, "memory_budget_exceeded");
        }

        var source = new ModelSource(name, path, $"registered model {name} version {manifest.Version}, verified" + (_serve.RequireSignature ? " and signed" : ""), null)
        {
            RegisteredAs = (name, manifest.Version),
        };
        IGenerationBackend backend;
        try
        {
            backend = await Task.Run(() => _loader(source, _serve), ct);
        }
        catch (ServerConfigurationException e)
        {
            Audit("model.load_refused", keyId, name, manifest.Version, string.Join("; ", e.Problems));
            throw new ApiException(StatusCodes.Status422UnprocessableEntity, string.Join("; ", e.Problems), "invalid_request_error", null, "model_load_failed");
        }
        if (backend.Model.Id != name)
        {
            (backend as IDisposable)?.Dispose();
            throw new InvalidOperationException($"the loader served '{backend.Model.Id}' for model '{name}'");
        }
        _logger.LogInformation("Loaded model {Model} version {Version}", name, manifest.Version);
        return (backend, new ServedModelInfo(source.Origin, source.RegisteredAs, need, _time.GetUtcNow()));
    }

    private void Drain(ServedModel retiring)
    {
        var version = retiring.Info.Registered?.Version ?? retiring.Info.Origin;
        _ = retiring.Drained.ContinueWith(_ => _logger.LogInformation("Model {Model} {Version} finished its requests and was unloaded", retiring.Id, version),
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <param name="id">The served id the watcher is kept under (the registry name, unless a start-up loader named the model otherwise).</param>
    private void Watch(string id, string name, string version)
    {
        var watcher = new ModelFileWatcher(_registry, name, version, _serve.RequireSignature, VerifyPeriod, _time);
        watcher.TamperDetected += report =>
        {
            _metrics.ModelTamperAlerts.Add(1, new KeyValuePair<string, object?>("model", name));
            Audit("model.tampered", null, name, version, string.Join("; ", report.Problems));
            _logger.LogError("Model {Model} version {Version}: files no longer match the manifest ({Problems}); serving the copy already loaded, and the files will not load again until fixed",
                name, version, string.Join("; ", report.Problems));
        };
        lock (_watchers) _watchers[id] = watcher;
    }

    private async Task StopWatchingAsync(string id)
    {
        ModelFileWatcher? watcher;
        lock (_watchers)
            if (_watchers.Remove(id, out watcher)) { }
        if (watcher is not null) await watcher.DisposeAsync();
    }

    private void Audit(string kind, string? keyId, string name, string? version, string detail) =>
        _audit?.Enqueue(new AuditRecord { At = _time.GetUtcNow(), Kind = kind, KeyId = keyId, Model = version is null ? name : $"{name}:{version}", Detail = detail });

    /// <summary>Registry reads fail with <see cref="RegistryException"/> on a bad name or a broken file: a clear 400 or 404.</summary>
    private static T Guard<T>(Func<T> read)
    {
        try
        {
            return read();
        }
        catch (ArgumentException e)
        {
            throw new ApiException(StatusCodes.Status400BadRequest, e.Message, "invalid_request_error", "name", "invalid_value");
        }
        catch (RegistryException e)
        {
            throw new ApiException(StatusCodes.Status404NotFound, e.Message, "invalid_request_error", "version", "version_not_found");
        }
    }

    private static void Valid(string name, string? version)
    {
        try
        {
            ModelName.Validate(name);
            if (version is not null) ModelVersion.Validate(version);
        }
        catch (RegistryException e)
        {
            throw new ApiException(StatusCodes.Status400BadRequest, SecretRedactor.Redact(e.Message), "invalid_request_error", version is null ? "name" : "version", "invalid_value");
        }
    }

    private static string Describe(ServedModel model) => model.Info.Registered is { } r ? "version " + r.Version : model.Info.Origin;

    private static ApiException Conflict(string message, string code) => new(StatusCodes.Status409Conflict, message, "invalid_request_error", null, code);

    private static ApiException NotLoaded(string id) =>
        new(StatusCodes.Status404NotFound, $"The model '{Shown(id)}' is not loaded.", "invalid_request_error", "name", "model_not_found");

    private static string Shown(string s) => s.Length <= 64 ? s : s[..64] + "...";

    internal static string Size(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):0.##} GiB" : $"{bytes / (double)(1L << 20):0.##} MiB";
}
