using System.Security.Cryptography;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Cli;

public sealed class SynthCommandTests : IDisposable
{
    private readonly string _dir = Fixtures.NewTempDirectory();

    /// <summary>A small qwen2 model's arguments; <paramref name="changes"/> are option/value pairs that replace or add to them.</summary>
    private string[] Args(string output, params string[] changes)
    {
        var args = new List<string> { "models", "synth", "--arch", "qwen2", "--layers", "1", "--dim", "64", "--heads", "4", "--kv-heads", "1",
            "--ff", "64", "--vocab", "400", "--ctx", "32", "--dtype", "q8_0", "--seed", "5", "--out", Path.Combine(_dir, output) };
        for (var i = 0; i < changes.Length; i++)
        {
            var at = args.IndexOf(changes[i]);
            if (at >= 0) args[at + 1] = changes[++i];
            else if (i + 1 < changes.Length && !changes[i + 1].StartsWith("--", StringComparison.Ordinal)) args.AddRange([changes[i], changes[++i]]);
            else args.Add(changes[i]);
        }
        return [.. args];
    }

    [Fact]
    public void WritesAGgufWithTheRequestedShapeAndTheSameBytesEachTime()
    {
        var first = CliRunner.Run(Args("a.gguf"));
        Assert.True(first.ExitCode == 0, first.Error);
        Assert.Contains("qwen2", first.Output);
        Assert.Equal(0, CliRunner.Run(Args("b.gguf")).ExitCode);
        Assert.Equal(SHA256.HashData(File.ReadAllBytes(Path.Combine(_dir, "a.gguf"))), SHA256.HashData(File.ReadAllBytes(Path.Combine(_dir, "b.gguf"))));
        using var model = GgufModelLoader.Load(Path.Combine(_dir, "a.gguf"));
        var c = model.Config;
        Assert.Equal((ModelArchitecture.Qwen2, 1, 64, 4, 1, 64, 400, 32), (c.Architecture, c.LayerCount, c.EmbeddingLength, c.HeadCount, c.KeyValueHeadCount, c.FeedForwardLength, c.VocabularySize, c.ContextLength));
        Assert.Equal(GgmlType.Q8_0, model.Weights.Layers[0].Query.Type);
        Assert.False(c.TiedOutputHead);
    }

    [Fact]
    public void QuantizeWritesAwqAndGptqFoldersThatLoadRepacked()
    {
        var awq = CliRunner.Run(Args("awq", "--format", "safetensors", "--dtype", "f16", "--quantize", "awq", "--group-size", "64"));
        Assert.True(awq.ExitCode == 0, awq.Error);
        Assert.Contains("linear layers AWQ 4-bit (group 64)", awq.Output);
        var gptq = CliRunner.Run(Args("gptq", "--format", "safetensors", "--dtype", "f32", "--quantize", "gptq", "--group-size", "32", "--act-order", "--asymmetric"));
        Assert.True(gptq.ExitCode == 0, gptq.Error);
        using (var model = ModelLoader.Load(Path.Combine(_dir, "awq")))
        {
            Assert.Equal(Int4Method.Awq, model.Config.Int4!.Method);
            Assert.Equal(GgmlType.Q4_1, model.Weights.Layers[0].Query.Type);
            Assert.Equal(GgmlType.F16, model.Weights.TokenEmbedding.Type);
        }
        using (var model = ModelLoader.Load(Path.Combine(_dir, "gptq")))
        {
            Assert.Equal((Int4Method.Gptq, 32, true, false), (model.Config.Int4!.Method, model.Config.Int4.GroupSize, model.Config.Int4.DescAct, model.Config.Int4.Symmetric));
            Assert.NotNull(model.Weights.Layers[0].Down!.InputOrder);
        }
    }

    [Theory]
    [InlineData("--quantize awq --format gguf --dtype f32", "--quantize awq writes a Hugging Face folder: add --format safetensors")]
    [InlineData("--quantize gptq --format safetensors --dtype f32 --group-size 48", "--group-size must be -1 or a positive multiple of 32; got 48")]
    [InlineData("--quantize gptq --format safetensors --dtype f32 --group-size 0", "--group-size must be -1 or a positive multiple of 32; got 0")]
    [InlineData("--quantize awq --format safetensors --dtype f32 --act-order", "--act-order and --asymmetric are GPTQ options")]
    [InlineData("--format safetensors --dtype f32 --asymmetric", "--act-order and --asymmetric need --quantize gptq")]
    [InlineData("--quantize awq --format safetensors --dtype f32 --group-size 128", "cannot be packed in groups of 128")]
    public void QuantizeOptionsThatDoNotApplyAreRefused(string options, string message)
    {
        var result = CliRunner.Run(Args("bad", options.Split(' ')));
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(message, result.Error);
    }

    [Fact]
    public void TiedWritesNoOutputHead()
    {
        Assert.Equal(0, CliRunner.Run(Args("t.gguf", "--tied")).ExitCode);
        using var model = GgufModelLoader.Load(Path.Combine(_dir, "t.gguf"));
        Assert.True(model.Config.TiedOutputHead);
    }

    [Fact]
    public void Llama3StyleModelsCarryLlamaCppsRopeFactors()
    {
        var result = CliRunner.Run(Args("l3.gguf", "--arch", "llama", "--tied", "--rope-theta", "500000", "--rope-scaling", "llama3", "--rope-factor", "8", "--rope-original-ctx", "16"));
        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Contains("llama3 rope scaling", result.Output);
        using var model = GgufModelLoader.Load(Path.Combine(_dir, "l3.gguf"));
        Assert.True(model.Config.TiedOutputHead);
        Assert.Equal(500000f, model.Config.RopeTheta);
        var expected = new RopeScaling(RopeScalingKind.Llama3, 8f, 1f, 4f, 16).InverseFrequencies(model.Config.HeadDim, 500000f);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - model.Weights.RopeInverseFrequencies[i]) <= 1e-6 * expected[i], $"pair {i}");
    }

    [Fact]
    public void Phi3WithLongRopeLoadsWithItsFactorsAndLongropeNeedsPhi3()
    {
        var result = CliRunner.Run(Args("p.gguf", "--arch", "phi3", "--rope-scaling", "longrope", "--rope-original-ctx", "8"));
        Assert.True(result.ExitCode == 0, result.Error);
        using (var model = GgufModelLoader.Load(Path.Combine(_dir, "p.gguf")))
        {
            Assert.Equal((ModelArchitecture.Phi3, RopeScalingKind.LongRope, 8), (model.Config.Architecture, model.Config.RopeScaling.Kind, model.Config.RopeScaling.OriginalContextLength));
            Assert.Equal(8f, model.Config.RopeScaling.LongFactors!.Values[^1]);
        }
        var refused = CliRunner.Run(Args("q.gguf", "--rope-scaling", "longrope"));
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("longrope scaling is Phi-3's: it needs architecture phi3; got qwen2", refused.Error);
    }

    [Fact]
    public void AZeroRopeFactorIsRefused()
    {
        var result = CliRunner.Run(Args("z.gguf", "--rope-scaling", "llama3", "--rope-factor", "0"));
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("rope factor must be a finite number above 0; got 0", result.Error);
    }

    [Fact]
    public void WritesAHuggingFaceFolder()
    {
        var result = CliRunner.Run(Args("hf", "--format", "safetensors", "--dtype", "bf16"));
        Assert.True(result.ExitCode == 0, result.Error);
        foreach (var file in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" })
            Assert.True(File.Exists(Path.Combine(_dir, "hf", file)), file);
    }

    [Theory]
    [InlineData("kv-heads", "--kv-heads", "3")]
    [InlineData("ff", "--ff", "48")]
    [InlineData("vocab", "--vocab", "100")]
    [InlineData("layers", "--layers", "0")]
    [InlineData("dim", "--dim", "60")]
    public void InvalidShapesAreRefusedNamingTheArgument(string field, string option, string value)
    {
        var result = CliRunner.Run(Args("x.gguf", option, value));
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(field, result.Error);
        Assert.False(File.Exists(Path.Combine(_dir, "x.gguf")));
    }

    [Theory]
    [InlineData("--dtype", "q4_k")]
    [InlineData("--arch", "gpt2")]
    [InlineData("--format", "onnx")]
    [InlineData("--layers", "two")]
    public void UnknownChoicesAreRefusedByTheParser(string option, string value)
    {
        var result = CliRunner.Run(Args("x.gguf", option, value));
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(value, result.Error);
    }

    [Fact]
    public void WritesGemmaWithItsWindowCapsAndRopeScaling()
    {
        var result = CliRunner.Run(Args("g2.gguf", "--arch", "gemma2", "--layers", "2", "--sliding-window", "12", "--attn-softcap", "20", "--final-softcap", "15"));
        Assert.True(result.ExitCode == 0, result.Error);
        using (var model = GgufModelLoader.Load(Path.Combine(_dir, "g2.gguf")))
        {
            var c = model.Config;
            Assert.Equal((ModelArchitecture.Gemma2, 12, 20f, 15f, true), (c.Architecture, c.SlidingWindow, c.Gemma!.AttentionLogitSoftCap, c.Gemma.FinalLogitSoftCap, c.TiedOutputHead));
        }
        result = CliRunner.Run(Args("g3", "--arch", "gemma3", "--layers", "6", "--rope-scaling", "linear", "--rope-factor", "8", "--format", "safetensors", "--dtype", "f32"));
        Assert.True(result.ExitCode == 0, result.Error);
        using (var model = ModelLoader.Load(Path.Combine(_dir, "g3")))
        {
            var c = model.Config;
            Assert.Equal((ModelArchitecture.Gemma3, 8, 6, RopeScalingKind.Linear), (c.Architecture, c.SlidingWindow, c.SlidingWindowPattern, c.RopeScaling.Kind));
        }
    }

    [Theory]
    [InlineData("--sliding-window", "4", "sliding window is for gemma2 and gemma3")]
    [InlineData("--attn-softcap", "20", "soft caps are for gemma2")]
        public void GemmaOptionsElsewhereOrOutOfRangeAreRefused(string option, string value, string expected)
    {
        var result = CliRunner.Run(Args("x.gguf", option, value));
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(expected, result.Error);
    }

    [Fact]
    public void QuantizedSafetensorsAreRefused()
    {
        var result = CliRunner.Run(Args("hf", "--format", "safetensors"));
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--dtype f32, f16 or bf16", result.Error);
    }

    public void Dispose() => Directory.Delete(_dir, true);
}
