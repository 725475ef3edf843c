using Bulwark.Server.Observability;
using Bulwark.Server.Hosting;
using Bulwark.Server.Tests.Replicas;
using Bulwark.Server.Tests.Security;
using Bulwark.Testing;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>
/// <c>Bulwark:Memory</c>: the malloc arena cap and the server's own gen2 collections, validated at, below and above
/// their limits through the configuration <c>serve</c> reads, and applied by a real <c>serve</c> process.
/// </summary>
public sealed class MemorySettingsTests
{
    private static MemoryOptions Read(params (string Key, string Value)[] settings) =>
        ServerSettings.Read(new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>("Bulwark:Memory:" + s.Key, s.Value))).Build()).Memory;

    private static string Refused(params (string Key, string Value)[] settings) =>
        string.Join("\n", Assert.Throws<ServerConfigurationException>(() => Read(settings)).Problems);

    [Fact]
    public void DefaultsCapArenasAtTwoAndCollectAfterSixMiB()
    {
        var memory = Read();
        Assert.Equal(2, memory.MallocArenaMax);
        Assert.Equal(6L << 20, memory.Gen2WhenGrownByBytes);
        Assert.Equal(TimeSpan.FromSeconds(15), memory.Gen2CheckInterval);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("1")]
    [InlineData("1024")]
    public void MallocArenaMaxFromZeroTo1024IsAccepted(string value) =>
        Assert.Equal(int.Parse(value), Read(("MallocArenaMax", value)).MallocArenaMax);

    [Theory]
    [InlineData("-1")]
    [InlineData("1025")]
    public void MallocArenaMaxOutsideIsRefusedByName(string value) =>
        Assert.Contains($"Bulwark:Memory:MallocArenaMax must be between 0 (glibc's default) and 1024; got {value}.", Refused(("MallocArenaMax", value)));

    [Theory]
    [InlineData("0", 0L)]
    [InlineData("1MiB", 1L << 20)]
    [InlineData("1048576", 1L << 20)]
    [InlineData("1TiB", 1L << 40)]
    public void Gen2WhenGrownByIsOffOrFromOneMiBToOneTiB(string value, long bytes) =>
        Assert.Equal(bytes, Read(("Gen2WhenGrownBy", value)).Gen2WhenGrownByBytes);

    [Theory]
    [InlineData("1048575")]
    [InlineData("1099511627777")]
    [InlineData("six")]
    [InlineData("-1MiB")]
    public void Gen2WhenGrownByOutsideIsRefusedByName(string value) =>
        Assert.Contains($"Bulwark:Memory:Gen2WhenGrownBy must be 0 (off) or a size between 1MiB and 1TiB such as 6MiB; got '{value}'.", Refused(("Gen2WhenGrownBy", value)));

    [Theory]
    [InlineData("00:00:01")]
    [InlineData("01:00:00")]
    public void Gen2CheckIntervalFromOneSecondToOneHourIsAccepted(string value) =>
        Assert.Equal(TimeSpan.Parse(value), Read(("Gen2CheckInterval", value)).Gen2CheckInterval);

    [Theory]
    [InlineData("00:00:00.999")]
    [InlineData("01:00:01")]
    public void Gen2CheckIntervalOutsideIsRefusedByName(string value) =>
        Assert.Contains("Bulwark:Memory:Gen2CheckInterval must be between 00:00:01 and 01:00:00", Refused(("Gen2CheckInterval", value)));

    [Theory]
    [InlineData("", "", "malloc arenas at most 2 (glibc ", "MALLOC_ARENA_MAX 2 at process start", 2)]
    [InlineData("1", "", "malloc arenas at most 1 (glibc ", "MALLOC_ARENA_MAX 1 at process start", 1)]
    [InlineData("", "3", "malloc arenas at most 2 (glibc ", "MALLOC_ARENA_MAX 3 at process start", 3)] // the operator's variable wins
    [InlineData("0", "", "malloc arenas: glibc ", "'s default (8 per core)", -1)]
    public async Task ServeStartsWithTheArenaCapInItsEnvironmentAndSaysSo(string setting, string variable, string expected, string alsoExpected, int mostArenas)
    {
        Assert.NotNull(NativeHeap.GlibcVersion); // these tests run on glibc (Debian); the cap is a no-op elsewhere
        var environment = new Dictionary<string, string>();
        if (setting.Length > 0) environment["Bulwark__Memory__MallocArenaMax"] = setting;
        if (variable.Length > 0) environment[NativeHeap.ArenaMaxVariable] = variable;
        var dir = Fixtures.NewTempDirectory("arenas");
        try
        {
            await using var serve = await TestServe.StartAsync(environment, dir);
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(30), () => Task.FromResult(serve.Output.Contains("malloc arenas"))), serve.Output);
            var line = serve.Output.Split('\n').Single(l => l.Contains("malloc arenas", StringComparison.Ordinal));
            Assert.Contains(expected, line);
            Assert.Contains(alsoExpected, line);
            Assert.Contains("a full GC when the heap grew by 6MiB since the last (checked every 15 s)", line);
            // Started again with the variable set (same pid), the runtime's threads made no more arenas than it allows.
            if (mostArenas > 0) Assert.InRange(int.Parse(Regex.Match(line, @"; (\d+) existed").Groups[1].Value), 1, mostArenas);
            Assert.Single(Regex.Matches(serve.Output, "Bulwark is serving")); // the restart printed nothing twice
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
