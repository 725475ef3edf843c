using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Model.Synthesis;
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

        var result = await CliHarness.RunAsync("models", "quantize", "syn", "--to", "q8_0", "--no-check", "--data-dir", dataDir);
        Assert.True(result.ExitCode == 0, result.Error);

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
}
