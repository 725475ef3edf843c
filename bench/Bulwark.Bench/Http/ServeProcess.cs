using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;

namespace Bulwark.Bench.Http;

/// <summary>
/// A real <c>bulwark serve</c> process (a built <c>bulwark.dll</c>, run with <c>dotnet</c>) on
/// 127.0.0.1 and a free port, configured only through <c>Bulwark__*</c> environment variables and
/// flags as an operator would. Killed, with its children, on dispose. <c>bench/run soak</c> loads
/// one; the replica and gateway tests run two.
/// </summary>
internal sealed partial class ServeProcess : IAsyncDisposable
{
    /// <summary>Time for the process to start, create the demo model and listen, on a loaded 2-core machine.</summary>
    private static readonly TimeSpan StartLimit = TimeSpan.FromSeconds(90);

    /// <summary>Lines of output kept: enough to explain a failure, bounded so a soak of hours does not grow the benchmark.</summary>
    private const int KeptLines = 2000;

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output;

    private ServeProcess(Process process, ConcurrentQueue<string> output, Uri address)
    {
        _process = process;
        _output = output;
        Address = address;
    }

    public Uri Address { get; }

    /// <summary>The server's process id (the <c>dotnet</c> host runs the server in itself).</summary>
    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>The last <see cref="KeptLines"/> lines the process printed (stdout and stderr).</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>
    /// The CLI <c>bench/run</c> builds beside the benchmark (<c>.build/bench/bulwark.dll</c>: the bench
    /// project references the CLI so that its build output lands there).
    /// </summary>
    public static string BesideBenchmark => Path.Combine(AppContext.BaseDirectory, "bulwark.dll");

    /// <summary>
    /// Starts <c>dotnet <paramref name="cliPath"/> serve --port 0 --data-dir <paramref name="dataDir"/></c>
    /// and <paramref name="serveArguments"/>, with the given <c>Bulwark__*</c> settings (and none
    /// inherited), and waits until it listens.
    /// </summary>
    public static async Task<ServeProcess> StartAsync(string cliPath, IReadOnlyDictionary<string, string> environment, string dataDir, params IEnumerable<string> serveArguments)
    {
        if (!File.Exists(cliPath)) throw new FileNotFoundException($"no bulwark CLI at {cliPath}", cliPath);
        var start = new ProcessStartInfo("dotnet", [cliPath, "serve", "--port", "0", "--data-dir", dataDir, .. serveArguments])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            // No appsettings.json from the repository: only what the caller sets.
            WorkingDirectory = dataDir,
        };
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("Bulwark__", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(name);
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        foreach (var (name, value) in environment) start.Environment[name] = value;

        var output = new ConcurrentQueue<string>();
        void Keep(string line)
        {
            output.Enqueue(line);
            while (output.Count > KeptLines) output.TryDequeue(out _);
        }
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            Keep(e.Data);
            if (ServingLine().Match(e.Data) is { Success: true } m) listening.TrySetResult(new Uri(m.Groups[1].Value + "/"));
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Keep(e.Data); };
        process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException("bulwark serve exited before listening"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var address = await listening.Task.WaitAsync(StartLimit);
            return new ServeProcess(process, output, address);
        }
        catch (Exception e)
        {
            Stop(process);
            throw new InvalidOperationException($"bulwark serve did not start ({e.Message}); it printed:\n{string.Join('\n', output)}", e);
        }
    }

    public HttpClient Client(string? key = null)
    {
        var client = new HttpClient { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(60) };
        if (key is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    public ValueTask DisposeAsync()
    {
        Stop(_process);
        return ValueTask.CompletedTask;
    }

    private static void Stop(Process process)
    {
        try
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
        catch (InvalidOperationException) { } // never started, or already gone
        process.Dispose();
    }

    [GeneratedRegex(@"^Bulwark is serving '[^']+' at (http://127\.0\.0\.1:\d+)")]
    private static partial Regex ServingLine();
}
