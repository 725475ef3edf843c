namespace Bulwark.Server.Registry;

/// <summary>
/// Re-verifies a serving version's files when the file system reports a change under them, and
/// on a fixed period (a change notification can be missed, e.g. on network file systems). A
/// mismatch raises <see cref="TamperDetected"/> once per distinct set of problems; the caller
/// keeps serving the copy it already loaded and refuses reloads from the tampered files.
/// </summary>
public sealed class ModelFileWatcher : IAsyncDisposable
{
    private readonly ModelRegistry _registry;
    private readonly string _name;
    private readonly string _version;
    private readonly bool _requireSignature;
    private readonly FileSystemWatcher? _watcher;
    private readonly ITimer _timer;
    private readonly SemaphoreSlim _running = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private string? _lastProblems;

    public ModelFileWatcher(ModelRegistry registry, string name, string version, bool requireSignature, TimeSpan period, TimeProvider time)
    {
        _registry = registry;
        _name = name;
        _version = version;
        _requireSignature = requireSignature;
        var folder = registry.FilesFolder(name, version);
        if (Directory.Exists(folder))
        {
            _watcher = new FileSystemWatcher(folder) { IncludeSubdirectories = true, NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.DirectoryName };
            _watcher.Changed += (_, _) => Trigger();
            _watcher.Created += (_, _) => Trigger();
            _watcher.Deleted += (_, _) => Trigger();
            _watcher.Renamed += (_, _) => Trigger();
            _watcher.EnableRaisingEvents = true;
        }
        _timer = time.CreateTimer(_ => Trigger(), null, period, period);
    }

    /// <summary>Raised (on a pool thread) when the files no longer match the manifest.</summary>
    public event Action<VerificationReport>? TamperDetected;

    /// <summary>The most recent verification outcome, or null before the first check.</summary>
    public VerificationReport? LastReport { get; private set; }

    /// <summary>Runs one verification now (also what change notifications and the timer do).</summary>
    public async Task<VerificationReport> CheckNowAsync()
    {
        await _running.WaitAsync(_stop.Token).ConfigureAwait(false);
        try
        {
            var report = await _registry.VerifyAsync(_name, _version, _requireSignature, null, _stop.Token).ConfigureAwait(false);
            LastReport = report;
            var key = report.Ok ? null : string.Join("\n", report.Problems);
            if (key is not null && key != _lastProblems) TamperDetected?.Invoke(report);
            _lastProblems = key;
            return report;
        }
        finally
        {
            _running.Release();
        }
    }

    private void Trigger()
    {
        if (_stop.IsCancellationRequested) return;
        _ = Task.Run(async () =>
        {
            try
            {
                await CheckNowAsync().ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Stopping.
            }
            catch (RegistryException e)
            {
                // The manifest itself is gone or unreadable: that is tampering too.
                var report = new VerificationReport(_name, _version, [e.Message], 0);
                LastReport = report;
                if (_lastProblems != e.Message) TamperDetected?.Invoke(report);
                _lastProblems = e.Message;
            }
        });
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _watcher?.Dispose();
        await _timer.DisposeAsync().ConfigureAwait(false);
    }
}
