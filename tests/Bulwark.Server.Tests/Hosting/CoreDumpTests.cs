using System.Runtime.InteropServices;
using Bulwark.Server.Tests.Replicas;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>
/// <c>bulwark serve</c> turns core files off at start-up (a crash would write prompts and keys to disk),
/// unless <c>Bulwark:Server:CoreDumps</c> is true. Real serve processes, started from a parent that allows
/// core files (this test raises its own soft limit to its hard one first, so the child would inherit them).
/// </summary>
[Collection(nameof(CoreDumpTests))] // the limit is process-wide: in-process ServeHost tests lower it too
public sealed partial class CoreDumpTests
{
    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static partial int GetRLimit(int resource, ref RLimit limit);

    [LibraryImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static partial int SetRLimit(int resource, ref RLimit limit);

    private const int RlimitCore = 4;

    /// <summary>"Max core file size" of a process: its soft and hard limits as /proc shows them.</summary>
    private static string CoreLimit(int pid) =>
        File.ReadLines($"/proc/{pid}/limits").Single(l => l.StartsWith("Max core file size", StringComparison.Ordinal))["Max core file size".Length..].Trim();

    [Theory]
    [InlineData(null, "0                    0                    bytes")]
    [InlineData("true", null)]
    public async Task ServeTurnsCoreFilesOffUnlessAskedFor(string? coreDumps, string? expected)
    {
        var limit = new RLimit();
        Assert.Equal(0, GetRLimit(RlimitCore, ref limit));
        // An in-process ServeHost test that ran earlier set the hard limit to 0; root may raise it again.
        var unlimited = new RLimit { Current = ulong.MaxValue, Maximum = ulong.MaxValue };
        if (limit.Maximum == 0 && SetRLimit(RlimitCore, ref unlimited) == 0) Assert.Equal(0, GetRLimit(RlimitCore, ref limit));
        if (limit.Maximum == 0)
        {
            // Core files are off for good on this machine (hard limit 0): serve cannot turn them on either.
            await using var plain = await TestServe.StartAsync(new Dictionary<string, string>(), Fixtures.NewTempDirectory("coredump"));
            Assert.StartsWith("0 ", CoreLimit(plain.Id), StringComparison.Ordinal);
            return;
        }
        var saved = limit;
        var raised = limit with { Current = limit.Maximum };
        Assert.Equal(0, SetRLimit(RlimitCore, ref raised));
        try
        {
            var environment = new Dictionary<string, string>();
            if (coreDumps is not null) environment["Bulwark__Server__CoreDumps"] = coreDumps;
            await using var serve = await TestServe.StartAsync(environment, Fixtures.NewTempDirectory("coredump"));
            var inherited = CoreLimit(Environment.ProcessId);
            Assert.Equal(expected ?? inherited, CoreLimit(serve.Id));
            Assert.NotEqual(expected, inherited);
        }
        finally
        {
            SetRLimit(RlimitCore, ref saved);
        }
    }
}

/// <summary>Runs alone, after the parallel tests: no in-process ServeHost may lower the limit while a child inherits it.</summary>
[CollectionDefinition(nameof(CoreDumpTests), DisableParallelization = true)]
public sealed class CoreDumpTestsCollection;
