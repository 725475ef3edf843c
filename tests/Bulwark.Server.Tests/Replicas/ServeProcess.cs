using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Replicas;

/// <summary>
/// A real <c>bulwark serve</c> process (the CLI as built beside these tests, run with <c>dotnet</c>)
/// on 127.0.0.1 and a free port, configured only through <c>Bulwark__*</c> environment variables as
/// an operator would. Killed, with its children, on dispose.
/// </summary>
internal sealed partial class ServeProcess : IAsyncDisposable
{
    /// <summary>Time for the process to start, create the demo model and listen, on a loaded 2-core machine.</summary>
    private static readonly TimeSpan StartLimit = TimeSpan.FromSeconds(90);

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output;

    private ServeProcess(Process process, ConcurrentQueue<string> output, Uri address)
    {
        _process = process;
        _output = output;
        Address = address;
    }

    public Uri Address { get; }

    /// <summary>Everything the process printed so far (stdout and stderr).</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>
    /// The CLI's own build output: <c>src/Bulwark.Cli/bin/&lt;configuration&gt;/net10.0/bulwark.dll</c>, in the
    /// configuration these tests were built in. (The copy in the test folder cannot run on its own:
    /// the test project's framework reference drops package assemblies it lists.)
    /// </summary>
    public static string CliPath
    {
        get
        {
            var testBin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
            var framework = testBin.Name;
            var configuration = testBin.Parent!.Name;
            var path = Path.Combine(Fixtures.RepositoryRoot, "src", "Bulwark.Cli", "bin", configuration, framework, "bulwark.dll");
            return File.Exists(path)
                ? path
                : throw new FileNotFoundException($"the CLI is not built at {path}; build the tests (they reference src/Bulwark.Cli) first", path);
        }
    }

    /// <summary>Starts <c>bulwark serve</c> with the given <c>Bulwark__*</c> settings and waits until it listens.</summary>
    public static async Task<ServeProcess> StartAsync(IReadOnlyDictionary<string, string> environment, string dataDir)
    {
        var start = new ProcessStartInfo("dotnet", [CliPath, "serve", "--port", "0", "--data-dir", dataDir, "--kv-cache-memory", "16MiB"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            // No appsettings.json from the repository: only what the test sets.
            WorkingDirectory = dataDir,
        };
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("Bulwark__", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(name);
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        foreach (var (name, value) in environment) start.Environment[name] = value;

        var output = new ConcurrentQueue<string>();
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            output.Enqueue(e.Data);
            if (ServingLine().Match(e.Data) is { Success: true } m) listening.TrySetResult(new Uri(m.Groups[1].Value + "/"));
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) output.Enqueue(e.Data); };
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
