using System.Diagnostics;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Deploy;

/// <summary>
/// The real tools the deploy/ files are checked with (promtool, amtool, prometheus, docker-compose,
/// kubectl), found on PATH. A missing tool fails the test with the Debian package that brings it:
/// scripts/test-services.sh installs them, so nothing is skipped silently.
/// </summary>
internal static class DeployTools
{
    public sealed record Result(int ExitCode, string Output, string Error)
    {
        public string All => Output + Error;
    }

    /// <summary>Debian package of each tool, named in the failure when the tool is missing.</summary>
    private static readonly Dictionary<string, string> Packages = new()
    {
        ["promtool"] = "prometheus",
        ["prometheus"] = "prometheus",
        ["amtool"] = "prometheus-alertmanager",
        ["docker-compose"] = "docker-compose",
        ["kubectl"] = "kubernetes-client",
    };

    public static string Deploy => Path.Combine(Fixtures.RepositoryRoot, "deploy");

    public static string PathOf(params string[] parts) => Path.Combine([Deploy, .. parts]);

    /// <summary>The tool's full path; fails the test, naming the package, when it is not installed.</summary>
    public static string Require(string tool)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, tool);
            if (File.Exists(candidate)) return candidate;
        }
        Assert.Fail($"{tool} is not installed: scripts/test-services.sh (run by test.sh) installs it with the Debian package {Packages.GetValueOrDefault(tool, tool)}");
        return "";
    }

    /// <summary>Runs a tool to its end (at most <paramref name="limit"/>, 2 minutes by default) and returns what it printed.</summary>
    public static async Task<Result> RunAsync(string tool, IEnumerable<string> arguments, string? workingDirectory = null, TimeSpan? limit = null,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(Require(tool), arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Deploy,
        };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(limit ?? TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{tool} {string.Join(' ', start.ArgumentList)} did not finish within {limit ?? TimeSpan.FromMinutes(2)}");
        }
        return new Result(process.ExitCode, await output, await error);
    }

    /// <summary>Runs a tool and fails the test, with everything it printed, unless it exits 0.</summary>
    public static async Task<Result> SucceedAsync(string tool, IEnumerable<string> arguments, string? workingDirectory = null, TimeSpan? limit = null,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var result = await RunAsync(tool, arguments, workingDirectory, limit, environment);
        Assert.True(result.ExitCode == 0, $"{tool} {string.Join(' ', arguments)} exited {result.ExitCode}:\n{result.All}");
        return result;
    }

    /// <summary>Copies a folder tree (the deploy files a test changes or adds to, in a temporary place).</summary>
    public static void CopyTree(string from, string to)
    {
        foreach (var dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            File.Copy(file, target, overwrite: true);
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(target, File.GetUnixFileMode(file));
        }
    }
}
