using Bulwark.Engine.Conversion;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Cli;

/// <summary><c>generate --quantize</c> and <c>bench/run engine --quantize</c>: the same model as the GGUF <c>models quantize</c> writes.</summary>
public sealed class QuantizeOptionTests
{
    private static readonly SyntheticModelSpec Spec = new() { Architecture = "llama", DType = GgmlType.F16, Layers = 2, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 96, Vocab = 400, Context = 64, Seed = 12 };

    [Fact]
    public void GenerateWithQuantizeDumpsTheLogitsOfTheQuantizedGguf()
    {
        var dir = Fixtures.NewTempDirectory("generate-quantize");
        var f16 = Path.Combine(dir, "m.gguf");
        var q4 = Path.Combine(dir, "m-q4.gguf");
        SyntheticModel.WriteGguf(Spec, f16);
        GgufRequantizer.Requantize(f16, q4, GgmlType.Q4_0);
        string[] Args(string model, string dump) => ["generate", "--model", model, "--prompt-ids", "3,141,59", "--max-tokens", "6", "--temperature", "0", "--json", "--dump-logits", dump];

        var onLoad = CliRunner.Run([.. Args(f16, Path.Combine(dir, "a.f32")), "--quantize", "q4_0"]);
        Assert.True(onLoad.ExitCode == 0, onLoad.Error);
        Assert.Contains("quantized 16 matrices to Q4_0 at load", onLoad.Error);
        var offline = CliRunner.Run(Args(q4, Path.Combine(dir, "b.f32")));
        Assert.True(offline.ExitCode == 0, offline.Error);
        Assert.Equal(offline.Output, onLoad.Output);
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "b.f32")), File.ReadAllBytes(Path.Combine(dir, "a.f32")));
    }

    [Fact]
    public void GenerateRefusesAnUnknownQuantizeValueWithTheValue()
    {
        var dir = Fixtures.NewTempDirectory("generate-quantize");
        var model = Path.Combine(dir, "m.gguf");
        SyntheticModel.WriteGguf(Spec, model);
        var result = CliRunner.Run("generate", "--prompt-ids", "1", "--model", model, "--quantize", "q6_k");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--quantize must be q8_0 or q4_0 (or none); got 'q6_k'", result.Error);
    }

    [Fact]
    public async Task BenchEngineRunsTheModelQuantizedAtLoad()
    {
        var dir = Fixtures.NewTempDirectory("bench-quantize");
        var model = Path.Combine(dir, "m.gguf");
        SyntheticModel.WriteGguf(Spec, model);
        var progress = new StringWriter();
        var results = await Bulwark.Bench.Serving.BenchEngineCommand.RunAsync(
            new Bulwark.Bench.Serving.BenchEngineSettings(model, [1], 4, 2, 0, BlockSize: 4, QuantizeTo: GgmlType.Q8_0), progress);
        Assert.Single(results);
        Assert.Contains("quantized 16 matrices to Q8_0 at load", progress.ToString());
    }
}
