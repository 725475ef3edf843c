using Bulwark.Engine.Conversion;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Conversion;

public class GgufRequantizerTests
{
    private static readonly SyntheticModelSpec Spec = new() { Layers = 2, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 96, Vocab = 300, Context = 64, Seed = 7 };

    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    public void QuantizingTheF32FileGivesTheBytesTheGeneratorWritesForThatType(GgmlType target)
    {
        // Two independent routes to the same file: the generator quantizes its floats directly;
        // the requantizer reads the F32 file back and quantizes row by row while streaming.
        var dir = Fixtures.NewTempDirectory(nameof(GgufRequantizerTests) + target);
        var f32 = Path.Combine(dir, "f32.gguf");
        var expected = Path.Combine(dir, "expected.gguf");
        var actual = Path.Combine(dir, "actual.gguf");
        SyntheticModel.WriteGguf(Spec, f32);
        SyntheticModel.WriteGguf(Spec with { DType = target }, expected);
        long last = 0;
        GgufRequantizer.Requantize(f32, actual, target, new SyncProgress(v => last = Math.Max(last, v)));
        Assert.Equal(File.ReadAllBytes(expected), File.ReadAllBytes(actual));
        Assert.True(last > 0);
    }

    [Fact]
    public void AnAlreadyQuantizedSourceIsRefusedNamingTheTensor()
    {
        var dir = Fixtures.NewTempDirectory(nameof(AnAlreadyQuantizedSourceIsRefusedNamingTheTensor));
        var q8 = Path.Combine(dir, "q8.gguf");
        SyntheticModel.WriteGguf(Spec with { DType = GgmlType.Q8_0 }, q8);
        var e = Assert.Throws<ModelFormatException>(() => GgufRequantizer.Requantize(q8, Path.Combine(dir, "out.gguf"), GgmlType.Q4_0));
        Assert.Contains("already Q8_0", e.Message);
        Assert.False(File.Exists(Path.Combine(dir, "out.gguf")));
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
    }

    [Fact]
    public void OnlyQ8AndQ4AreTargets()
    {
        var dir = Fixtures.NewTempDirectory(nameof(OnlyQ8AndQ4AreTargets));
        var f32 = Path.Combine(dir, "f32.gguf");
        SyntheticModel.WriteGguf(Spec, f32);
        Assert.Throws<ArgumentException>(() => GgufRequantizer.Requantize(f32, Path.Combine(dir, "out.gguf"), GgmlType.F16));
    }

    /// <summary>Progress&lt;T&gt; posts to the thread pool; tests want the value before the call returns.</summary>
    private sealed class SyncProgress(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }
}
