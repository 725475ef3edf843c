using System.Text.Json;
using Bulwark.Cli.Commands;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tests.Parity;
using Bulwark.Engine.Tokenizers;
using Bulwark.Engine.Tokenizers.Loading;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Cli;

public sealed class GenerateCommandTests : IDisposable
{
    private readonly string _dir = Fixtures.NewTempDirectory();
    private readonly string _model;
    private static readonly SyntheticModelSpec Spec = new() { Architecture = "llama", Layers = 2, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 96, Vocab = 400, Context = 64, Seed = 11 };

    public GenerateCommandTests()
    {
        _model = Path.Combine(_dir, "m.gguf");
        SyntheticModel.WriteGguf(Spec, _model);
    }

    private static (int[] PromptIds, int[] Ids, string? Text) ParseJson(string output)
    {
        using var json = JsonDocument.Parse(output);
        var root = json.RootElement;
        return (root.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            root.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            root.GetProperty("text").GetString());
    }

    [Fact]
    public void GreedyIdsAndDumpedLogitsAgreeWithLlamaCpp()
    {
        var logitsPath = Path.Combine(_dir, "logits.f32");
        var result = CliRunner.Run("generate", "--model", _model, "--prompt-ids", "3,141,59,265", "--max-tokens", "12",
            "--temperature", "0", "--json", "--dump-logits", logitsPath);
        Assert.True(result.ExitCode == 0, result.Error);
        var (promptIds, ids, text) = ParseJson(result.Output);
        Assert.Equal([3, 141, 59, 265], promptIds);
        Assert.Equal(12, ids.Length);
        Assert.Equal(TokenizerLoader.FromGguf(_model).Decode(ids), text);

        // llama.cpp decodes prompt + generated ids in one batch: each generated id must be its
        // argmax one position earlier, and each dumped row its logits there.
        var theirs = LlamaCppOracle.Logits(_model, [.. promptIds, .. ids]);
        var bytes = File.ReadAllBytes(logitsPath);
        Assert.Equal(ids.Length * Spec.Vocab * 4, bytes.Length);
        for (var step = 0; step < ids.Length; step++)
        {
            var row = new float[Spec.Vocab];
            Buffer.BlockCopy(bytes, step * Spec.Vocab * 4, row, 0, Spec.Vocab * 4);
            var reference = theirs[promptIds.Length - 1 + step];
            var m = LogitDifference.Of(row, reference);
            Assert.True(m.MaxDiff <= 1e-3 * m.MaxAbs, $"step {step}: dumped logits differ from llama.cpp's by {m.MaxDiff}");
            Assert.Equal(m.TheirArgMax, ids[step]);
        }
    }

    [Fact]
    public void TextPromptsUseTheModelsTokenizerAndPrintTheContinuation()
    {
        var json = CliRunner.Run("generate", "--model", _model, "--prompt", "Once upon a time", "--max-tokens", "5", "--temperature", "0", "--json");
        Assert.True(json.ExitCode == 0, json.Error);
        var (promptIds, ids, text) = ParseJson(json.Output);
        Assert.Equal(LlamaCppOracle.Tokenize(_model, "Once upon a time", addSpecial: true, parseSpecial: false), promptIds);
        var plain = CliRunner.Run("generate", "--model", _model, "--prompt", "Once upon a time", "--max-tokens", "5", "--temperature", "0");
        Assert.Equal("Once upon a time" + text + Environment.NewLine, plain.Output);
        Assert.Equal(5, ids.Length);
    }

    [Fact]
    public void AHuggingFaceFolderOfTheSameModelGeneratesTheSameIdsAndText()
    {
        var folder = Path.Combine(_dir, "hf");
        SyntheticModel.WriteSafetensors(Spec, folder);
        string[] Args(string model) => ["generate", "--model", model, "--prompt", "The quick brown fox", "--max-tokens", "16", "--temperature", "0", "--json"];
        var gguf = CliRunner.Run(Args(_model));
        var hf = CliRunner.Run(Args(folder));
        Assert.True(hf.ExitCode == 0, hf.Error);
        var (ggufPrompt, ggufIds, ggufText) = ParseJson(gguf.Output);
        var (hfPrompt, hfIds, hfText) = ParseJson(hf.Output);
        Assert.Equal(ggufPrompt, hfPrompt);
        Assert.Equal(ggufIds, hfIds);
        Assert.Equal(ggufText, hfText);
    }

    [Fact]
    public void SamplingIsReproducibleFromTheSeed()
    {
        string[] Args(string seed) => ["generate", "--model", _model, "--prompt-ids", "7", "--max-tokens", "20", "--temperature", "1.5", "--seed", seed, "--json"];
        var a = ParseJson(CliRunner.Run(Args("1")).Output).Ids;
        Assert.Equal(a, ParseJson(CliRunner.Run(Args("1")).Output).Ids);
        Assert.NotEqual(a, ParseJson(CliRunner.Run(Args("2")).Output).Ids);
    }

    [Fact]
    public void GenerationStopsAfterEndOfSequence()
    {
        using var model = GgufModelLoader.Load(_model);
        var greedy = new SamplingParams { Temperature = 0, MaxTokens = 10 };
        var vocabulary = SyntheticVocabulary.Create(Spec.Vocab);
        var free = GenerateCommand.Generate(model, 20, [5, 6], greedy, TokenizerFactory.Create(vocabulary), (_, _) => { });
        Assert.Equal(10, free.Count);
        var eos = free[3];
        var stopping = TokenizerFactory.Create(vocabulary with { Special = new SpecialTokens { Eos = eos } });
        var stopped = GenerateCommand.Generate(model, 20, [5, 6], greedy, stopping, (_, _) => { });
        Assert.Equal(free.Take(free.IndexOf(eos) + 1), stopped);
    }

    [Fact]
    public void WithoutAModelTheDemoModelIsCreatedOnceInTheDataDirectory()
    {
        var data = Path.Combine(_dir, "data");
        var first = CliRunner.Run("generate", "--data-dir", data, "--prompt", "Hello", "--max-tokens", "3");
        Assert.True(first.ExitCode == 0, first.Error);
        var demo = Path.Combine(data, "models", GenerateCommand.DemoFileName);
        Assert.True(File.Exists(demo));
        Assert.Contains("created the demo model", first.Error);
        Assert.Contains("random", first.Error);
        Assert.Contains("--model", first.Error);
        Assert.Single(Directory.GetFiles(Path.Combine(data, "models")));
        var written = File.GetLastWriteTimeUtc(demo);
        var second = CliRunner.Run("generate", "--data-dir", data, "--prompt", "Hello", "--max-tokens", "3");
        Assert.Equal(0, second.ExitCode);
        Assert.DoesNotContain("created", second.Error);
        Assert.Equal(written, File.GetLastWriteTimeUtc(demo));
        Assert.StartsWith("Hello", second.Output);
    }

    [Theory]
    [InlineData("exactly one of --prompt", "--prompt", "hi", "--prompt-ids", "1")]
    [InlineData("exactly one of --prompt")]
    [InlineData("between 0 and 399; got \"400\"", "--prompt-ids", "1,400")]
    [InlineData("got \"x\"", "--prompt-ids", "1,x")]
    [InlineData("got \"-1\"", "--prompt-ids", "-1")]
    [InlineData("--max-tokens must be between 1", "--prompt-ids", "1", "--max-tokens", "0")]
    [InlineData("context is 64", "--prompt-ids", "1,2", "--max-tokens", "64")]
    [InlineData("--temperature must be between 0 and 100; got -1", "--prompt-ids", "1", "--temperature", "-1")]
    public void BadArgumentsAreRefusedWithTheValue(string message, params string[] extra)
    {
        var result = CliRunner.Run(["generate", "--model", _model, .. extra]);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(message, result.Error);
        Assert.Equal("", result.Output);
    }

    [Fact]
    public void ContextIsUsedUpToTheLastPosition()
    {
        // 2 prompt tokens + 63 generated need 64 positions: exactly the context.
        var result = CliRunner.Run("generate", "--model", _model, "--prompt-ids", "1,2", "--max-tokens", "63", "--temperature", "0", "--json");
        Assert.True(result.ExitCode == 0, result.Error);
    }

    [Fact]
    public void AMissingModelFileIsAClearError()
    {
        var result = CliRunner.Run("generate", "--model", Path.Combine(_dir, "nope.gguf"), "--prompt", "hi");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("nope.gguf", result.Error);
        Assert.Contains("does not exist", result.Error);
    }

    public void Dispose() => Directory.Delete(_dir, true);
}
