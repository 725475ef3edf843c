using Bulwark.Engine.Conversion;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Synthesis;
using Bulwark.Server.Registry;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Cli;

/// <summary><c>bulwark models quantize</c> from a Hugging Face (safetensors) version: converted to GGUF, then quantized.</summary>
public sealed class ModelsQuantizeCommandTests
{
    [Fact]
    public async Task ASafetensorsVersionQuantizesIntoTheGgufTheGeneratorsModelQuantizesInto()
    {
        var root = Fixtures.NewTempDirectory("quantize-hf");
        var dataDir = Path.Combine(root, "data");
        var spec = new SyntheticModelSpec { Architecture = "llama", DType = GgmlType.F32, Layers = 2, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 128, Vocab = 320, Context = 64, Seed = 3 };
        SyntheticModel.WriteSafetensors(spec, Path.Combine(root, "hf"));
        SyntheticModel.WriteGguf(spec, Path.Combine(root, "f32.gguf"));
        GgufRequantizer.Requantize(Path.Combine(root, "f32.gguf"), Path.Combine(root, "expected-q8.gguf"), GgmlType.Q8_0);
        var registry = ModelRegistry.Open(DataDirectory.Resolve(dataDir).EnsureCreated());
        Assert.Equal("safetensors", (await registry.AddAsync("syn", Path.Combine(root, "hf"), new AddOptions())).Format);

        // The check runs the quantized GGUF against its safetensors parent on the probe set; Q8_0 passes the default gate.
        var result = await CliHarness.RunAsync("models", "quantize", "syn", "--to", "q8_0", "--data-dir", dataDir);
        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Equal(GateStatus.Passed, new QuantizationGate(registry, TimeProvider.System).Status("syn", registry.Manifest("syn", "v2")).Status);

        var added = registry.Manifest("syn", "v2");
        Assert.Equal(("gguf", "q8_0", "v1"), (added.Format, added.Quantization, added.Parent));
        var (_, path) = await registry.VerifiedPathAsync("syn", "v2", requireSignature: false);
        using var expected = GgufFile.Open(Path.Combine(root, "expected-q8.gguf"));
        using var actual = GgufFile.Open(path);
        Assert.Equal(expected.Tensors.Count, actual.Tensors.Count);
        foreach (var t in expected.Tensors)
        {
            Assert.True(actual.TryGetTensor(t.Name, out var a), t.Name);
            Assert.Equal(t.Type, a.Type);
            Assert.True(expected.TensorBytes(t).SequenceEqual(actual.TensorBytes(a)), t.Name);
        }
        // The working files are gone; only versions remain.
        Assert.Empty(Directory.GetDirectories(registry.Root, ".quantize-*"));
    }

    [Fact]
    public async Task ConvertWritesTheGeneratorsGgufAsAnUngatedVersionAndRefusesAGgufSource()
    {
        var root = Fixtures.NewTempDirectory("convert-hf");
        var dataDir = Path.Combine(root, "data");
        var spec = new SyntheticModelSpec { Architecture = "qwen3", DType = GgmlType.F16, Layers = 1, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 128, Vocab = 320, Context = 64, Seed = 4 };
        SyntheticModel.WriteSafetensors(spec, Path.Combine(root, "hf"));
        SyntheticModel.WriteGguf(spec, Path.Combine(root, "expected.gguf"));
        var registry = ModelRegistry.Open(DataDirectory.Resolve(dataDir).EnsureCreated());
        await registry.AddAsync("syn", Path.Combine(root, "hf"), new AddOptions());

        var result = await CliHarness.RunAsync("models", "convert", "syn", "--data-dir", dataDir);
        Assert.True(result.ExitCode == 0, result.Error);
        var added = registry.Manifest("syn", "v2");
        Assert.Equal(("gguf", null, "v1"), (added.Format, added.Quantization, added.Parent));
        Assert.Equal(GateStatus.NotGated, new QuantizationGate(registry, TimeProvider.System).Status("syn", added).Status);
        var (_, path) = await registry.ResolveVerifiedAsync("syn", "v2", requireSignature: false);
        using (var expected = GgufFile.Open(Path.Combine(root, "expected.gguf")))
        using (var actual = GgufFile.Open(path))
            foreach (var t in expected.Tensors.Where(t => t.Dimensions.Length == 2))
            {
                Assert.True(actual.TryGetTensor(t.Name, out var a), t.Name);
                Assert.True(expected.TensorBytes(t).SequenceEqual(actual.TensorBytes(a)), t.Name);
            }

        var again = await CliHarness.RunAsync("models", "convert", "syn", "--version", "v2", "--data-dir", dataDir);
        Assert.Equal(1, again.ExitCode);
        Assert.Equal(["v1", "v2"], registry.Versions("syn").Select(v => v.Version));
    }
}
