using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Faults;

/// <summary>
/// What a fault test needs of a server it owns (a private Redis or PostgreSQL, never the shared ones
/// other tests use): a free loopback port, a temp folder, the binary, and a process it can kill and
/// start again on the same port and data. Subclasses say how to start and how to tell it is up.
/// Disposing kills the process and removes the folder, so a failing test leaves nothing running.
/// </summary>
internal abstract class PrivateServer : IAsyncDisposable
{
    /// <summary>How long a start may take on a loaded 2-core machine before the test fails.</summary>
    protected static readonly TimeSpan StartLimit = TimeSpan.FromSeconds(60);

    private Process? _process;

    protected PrivateServer(string name)
    {
        Folder = Fixtures.NewTempDirectory(name);
        Port = FreePort();
    }

    public int Port { get; }

    /// <summary>The server's own folder (data, socket, log).</summary>
    public string Folder { get; }

    public bool Running => _process is { HasExited: false };

    /// <summary>Starts the server (again, on the same port and data) and waits until it answers.</summary>
    public async Task StartAsync()
    {
        if (Running) throw new InvalidOperationException("already running");
        _process?.Dispose();
        var start = StartInfo();
        start.UseShellExecute = false;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) output.Enqueue(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) output.Enqueue(e.Data); };
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = Stopwatch.StartNew();
        while (!await AnswersAsync())
        {
            if (_process.HasExited || deadline.Elapsed > StartLimit)
            {
                Kill();
                throw new InvalidOperationException($"{start.FileName} did not answer on 127.0.0.1:{Port} within {StartLimit.TotalSeconds:0} s; it printed:\n" +
                    string.Join('\n', output) + Log());
            }
            await Task.Delay(20);
        }
    }

    /// <summary>SIGKILL: the server gets no chance to say goodbye, as in a crash.</summary>
    public void Kill()
    {
        if (_process is null) return;
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
        catch (InvalidOperationException) { } // already gone
    }

    protected abstract ProcessStartInfo StartInfo();

    /// <summary>Whether the server answers now (one quick try).</summary>
    protected abstract Task<bool> AnswersAsync();

    /// <summary>The server's own log, for a failure message.</summary>
    protected virtual string Log() => "";

    public virtual ValueTask DisposeAsync()
    {
        Kill();
        _process?.Dispose();
        try { Directory.Delete(Folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        return ValueTask.CompletedTask;
    }

    /// <summary>The full path of <paramref name="binary"/>, or a failure that says which package provides it.</summary>
    protected static string Require(string binary, string package)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
            if (dir.Length > 0 && File.Exists(Path.Combine(dir, binary))) return Path.Combine(dir, binary);
        throw new InvalidOperationException($"{binary} is not installed: install the Debian package '{package}' (./test.sh does, through scripts/test-services.sh)");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
