using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Formats.Safetensors;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Formats;

/// <summary>
/// Replays the committed hostile corpus (TestData/hostile) through the readers and loaders: every
/// file must raise <see cref="ModelFormatException"/> — never another exception, never a crash —
/// while allocating a bounded amount of memory. Files found by the fuzzer go in hostile/found/.
/// </summary>
public class HostileCorpusTests
{
    private const long MaxAllocatedBytes = 16L * 1024 * 1024;

    private static string SourceRoot => Path.Combine(Fixtures.RepositoryRoot, "tests", "Bulwark.Engine.Tests", "TestData", "hostile");

    private static string CorpusRoot => Path.Combine(AppContext.BaseDirectory, "TestData", "hostile");

    /// <summary>Every corpus entry: a file, or for hf/ a whole model folder.</summary>
    public static IEnumerable<string> Entries()
    {
        if (!Directory.Exists(CorpusRoot)) return [];
        var files = Directory.GetFiles(CorpusRoot, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(CorpusRoot, f).Replace('\\', '/'))
            .Where(f => !f.StartsWith("hf/", StringComparison.Ordinal));
        var folders = Directory.Exists(Path.Combine(CorpusRoot, "hf"))
            ? Directory.GetDirectories(Path.Combine(CorpusRoot, "hf")).Select(d => "hf/" + Path.GetFileName(d))
            : [];
        return files.Concat(folders).Order(StringComparer.Ordinal);
    }

    public static TheoryData<string> Cases() => new(Entries());

    /// <summary>Opens an entry the way Bulwark would, by where it sits in the corpus.</summary>
    internal static void Replay(string entry, string path)
    {
        var kind = entry[..entry.IndexOf('/')];
        switch (kind == "found" ? Path.GetExtension(entry).TrimStart('.') : kind)
        {
            case "gguf":
                using (GgufFile.Open(path)) { }
                ModelLoader.Load(path).Dispose();
                break;
            case "safetensors":
                SafetensorsFile.Open(path).Dispose();
                break;
            case "index":
                SafetensorsIndex.Read(path);
                break;
            case "config" or "json":
                HfConfig.Read(path);
                break;
            case "hf":
                ModelLoader.Load(path).Dispose();
                break;
            default:
                throw new InvalidOperationException($"corpus entry {entry} is in no known folder");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryHostileFileIsRefusedCleanlyWithBoundedMemory(string entry)
    {
        var path = Path.Combine(CorpusRoot, entry);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var error = Record.Exception(() => Replay(entry, path));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.NotNull(error);
        Assert.True(error is ModelFormatException, $"{entry}: expected ModelFormatException, got {error.GetType().Name}: {error}");
        Assert.True(allocated < MaxAllocatedBytes, $"{entry}: allocated {allocated} bytes (limit {MaxAllocatedBytes})");
        Assert.True(error.Message.Length < 2000, $"{entry}: error message of {error.Message.Length} characters");
    }

    [Fact]
    public void CommittedCorpusIsWhatTheGeneratorWrites()
    {
        var generated = HostileModelFiles.All().ToList();
        if (Environment.GetEnvironmentVariable("BULWARK_REGENERATE_HOSTILE") == "1")
        {
            foreach (var dir in new[] { "gguf", "safetensors", "index", "config", "hf" }.Select(d => Path.Combine(SourceRoot, d)).Where(Directory.Exists))
                Directory.Delete(dir, true);
            foreach (var (relative, bytes) in generated)
            {
                var target = Path.Combine(SourceRoot, relative);
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.WriteAllBytes(target, bytes);
            }
        }
        Assert.True(generated.Count >= 150, $"only {generated.Count} generated files");
        Assert.Equal(generated.Count, generated.Select(g => g.Path).Distinct().Count());
        foreach (var (relative, bytes) in generated)
        {
            var committed = Path.Combine(SourceRoot, relative);
            Assert.True(File.Exists(committed), $"{relative} is generated but not committed: run with BULWARK_REGENERATE_HOSTILE=1");
            Assert.True(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(committed)), $"{relative} differs from what the generator writes");
        }
        var stale = Entries().Where(e => !e.StartsWith("found/", StringComparison.Ordinal)
            && !generated.Any(g => g.Path == e || g.Path.StartsWith(e + "/", StringComparison.Ordinal))).ToList();
        Assert.True(stale.Count == 0, $"committed but no longer generated: {string.Join(", ", stale)}");
    }

    [Fact]
    public void TheValidFilesTheCorpusIsCutFromAreAccepted()
    {
        // Otherwise the truncations would prove nothing.
        var gguf = GgufTestFiles.WriteBytes(HostileModelFiles.ValidGguf());
        using (var file = GgufFile.Open(gguf)) Assert.Equal(2, file.Tensors.Count);
        var st = SafetensorsBytes.Write(HostileModelFiles.ValidSafetensors());
        using (var file = SafetensorsFile.Open(st)) Assert.Equal(2, file.Tensors.Count);
    }
}
