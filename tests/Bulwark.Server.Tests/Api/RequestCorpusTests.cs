using Bulwark.Fuzz;

namespace Bulwark.Server.Tests.Api;

/// <summary>
/// Replays the committed request corpus (TestData/requests/&lt;target&gt;/, the fuzzer's seeds and
/// whatever it found) through the fuzz targets of <c>fuzz/Bulwark.Fuzz</c> — the body parser, the
/// route's parser and the input guard, as the server runs them. Every input is accepted or refused
/// with a 4xx <c>ApiException</c>, never anything else; a <c>valid-*</c> seed is accepted, so the
/// fuzzer always starts from requests that go all the way through.
/// </summary>
public sealed class RequestCorpusTests
{
    private const long MaxAllocatedBytes = 32L * 1024 * 1024;

    private static string CorpusRoot => Path.Combine(AppContext.BaseDirectory, "TestData", "requests");

    public static TheoryData<string> Cases() => new(RequestTargets.Names
        .Where(t => Directory.Exists(Path.Combine(CorpusRoot, t)))
        .SelectMany(t => Directory.GetFiles(Path.Combine(CorpusRoot, t)).Select(f => $"{t}/{Path.GetFileName(f)}"))
        .Order(StringComparer.Ordinal));

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryInputIsAcceptedOrRefusedCleanly(string entry)
    {
        var bytes = File.ReadAllBytes(Path.Combine(CorpusRoot, entry));
        // The first call loads the guard's model and the parsers' statics; that is not the input's doing.
        RequestTargets.Read("guard", "warm up"u8.ToArray());
        var before = GC.GetAllocatedBytesForCurrentThread();

        var error = Record.Exception(() => RequestTargets.Read(entry[..entry.IndexOf('/')], bytes));

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(error is null || RequestTargets.IsRefusal(error), $"{entry}: expected acceptance or a 4xx ApiException, got {error}");
        if (Path.GetFileName(entry).StartsWith("valid-", StringComparison.Ordinal)) Assert.Null(error);
        Assert.True(allocated < MaxAllocatedBytes, $"{entry}: allocated {allocated} bytes (limit {MaxAllocatedBytes})");
        Assert.True(error is null || error.Message.Length < 2000, $"{entry}: a refusal of {error?.Message.Length} characters");
    }

    [Fact]
    public void EveryTargetHasSeedsThatGoAllTheWayThrough()
    {
        Assert.True(Directory.Exists(CorpusRoot), $"the corpus is missing from {CorpusRoot}");
        foreach (var target in RequestTargets.Names)
            Assert.True(Directory.GetFiles(Path.Combine(CorpusRoot, target), "valid-*").Length > 0, $"no valid-* seed for {target}");
    }
}
