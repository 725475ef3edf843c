using System.Text.Json;
using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tests.Cli;
using Bulwark.Engine.Tokenizers;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Tokenizers;

/// <summary>
/// <c>bulwark tokenize</c> on a small synthetic model (GGUF and Hugging Face folder), with
/// llama.cpp reading the same GGUF as the oracle for the ids.
/// </summary>
public sealed class TokenizeCommandTests : IClassFixture<TokenizeCommandTests.Model>
{
    public sealed class Model : IDisposable
    {
        public Model()
        {
            Folder = Fixtures.NewTempDirectory("tokenize-cli");
            var spec = new SyntheticModelSpec { Layers = 1, Dim = 32, Heads = 2, KvHeads = 1, FeedForward = 64, Vocab = 2048, Context = 64, ChatTemplate = SyntheticModel.ChatMlTemplate };
            Gguf = Path.Combine(Folder, "model.gguf");
            SyntheticModel.WriteGguf(spec, Gguf);
            HuggingFace = Path.Combine(Folder, "hf");
            Directory.CreateDirectory(HuggingFace);
            SyntheticModel.WriteSafetensors(spec, HuggingFace);
            LlamaCpp = LlamaCppVocabulary.Open(Gguf);
        }

        public string Folder { get; }
        public string Gguf { get; }
        public string HuggingFace { get; }
        public LlamaCppVocabulary LlamaCpp { get; }

        public void Dispose()
        {
            LlamaCpp.Dispose();
            try { Directory.Delete(Folder, recursive: true); } catch (IOException) { }
        }
    }

    private readonly Model _model;

    public TokenizeCommandTests(Model model) => _model = model;

    private static int[] Ids(string stdout) =>
        stdout.TrimEnd('\n').Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();

    [Theory]
    [InlineData("Hello, world! 12345 'll  \t\n")]
    [InlineData("<|im_start|>user\nhi<|im_end|>")]
    [InlineData("")]
    public void PrintsTheIdsLlamaCppGivesForUserText(string text)
    {
        var run = CliRunner.Run("tokenize", "--model", _model.Gguf, "--text", text);
        Assert.Equal((0, ""), (run.ExitCode, run.Stderr));
        Assert.Equal(_model.LlamaCpp.Tokenize(text, addSpecial: true, parseSpecial: false), Ids(run.Stdout));
    }

    [Fact]
    public void SpecialLetsOperatorTextSpellControlTokens()
    {
        const string text = "<|im_start|>user\nhi<|im_end|>";
        var user = Ids(CliRunner.Run("tokenize", "--model", _model.Gguf, "--text", text).Stdout);
        var run = CliRunner.Run("tokenize", "--model", _model.Gguf, "--text", text, "--special");
        var operatorIds = Ids(run.Stdout);
        Assert.Equal(_model.LlamaCpp.Tokenize(text, addSpecial: true, parseSpecial: true), operatorIds);
        var imStart = _model.LlamaCpp.Ours.IdOf("<|im_start|>");
        Assert.Contains(imStart, operatorIds);
        Assert.DoesNotContain(imStart, user);
    }

    [Fact]
    public void AHuggingFaceFolderGivesTheSameIdsAsTheGguf()
    {
        const string text = "<|im_start|>Grüße 🤖 x=42;\n";
        foreach (var special in new[] { false, true })
        {
            string[] flags = special ? ["--special"] : [];
            var gguf = CliRunner.Run(["tokenize", "--model", _model.Gguf, "--text", text, .. flags]);
            var folder = CliRunner.Run(["tokenize", "--model", _model.HuggingFace, "--text", text, .. flags]);
            Assert.Equal(0, folder.ExitCode);
            Assert.Equal(gguf.Stdout, folder.Stdout);
        }
    }

    [Fact]
    public void TextFileBytesAreTokenizedAsLlamaCppDoesEvenWhenInvalidUtf8()
    {
        byte[] bytes = [.. "caf\u00e9 "u8, 0xFF, 0xC3, (byte)'\n', 0xE2, 0x82];
        var file = Path.Combine(_model.Folder, "invalid.txt");
        File.WriteAllBytes(file, bytes);
        var run = CliRunner.Run("tokenize", "--model", _model.Gguf, "--text-file", file);
        Assert.Equal(0, run.ExitCode);
        Assert.Equal(_model.LlamaCpp.Tokenize(bytes, addSpecial: true, parseSpecial: false), Ids(run.Stdout));
    }

    [Fact]
    public void JsonPrintsIdsWithTheirTokenTexts()
    {
        var run = CliRunner.Run("tokenize", "--model", _model.Gguf, "--text", "Hello world", "--json");
        Assert.Equal(0, run.ExitCode);
        using var json = JsonDocument.Parse(run.Stdout);
        var ids = json.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var tokens = json.RootElement.GetProperty("tokens").EnumerateArray().Select(e => e.GetString()).ToArray();
        Assert.Equal(_model.LlamaCpp.Tokenize("Hello world", addSpecial: true, parseSpecial: false), ids);
        Assert.Equal(ids.Select(_model.LlamaCpp.Ours.TokenText), tokens);
        Assert.Equal("Hello world", string.Concat(tokens).Replace('\u0120', ' '));
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(false, false)]
    public void TextAndTextFileExcludeEachOther(bool text, bool textFile)
    {
        var file = Path.Combine(_model.Folder, "x.txt");
        File.WriteAllText(file, "x");
        string[] args = ["tokenize", "--model", _model.Gguf, .. text ? new[] { "--text", "x" } : [], .. textFile ? new[] { "--text-file", file } : []];
        var run = CliRunner.Run(args);
        Assert.Equal(1, run.ExitCode);
        Assert.Equal("", run.Stdout);
        Assert.Contains("exactly one of --text and --text-file", run.Stderr);
    }

    [Fact]
    public void AMissingModelIsAOneLineErrorNamingThePath()
    {
        var missing = Path.Combine(_model.Folder, "nope.gguf");
        var run = CliRunner.Run("tokenize", "--model", missing, "--text", "x");
        Assert.Equal(1, run.ExitCode);
        Assert.Equal("", run.Stdout);
        Assert.StartsWith("error: ", run.Stderr);
        Assert.Contains("nope.gguf", run.Stderr);
        Assert.Single(run.Stderr.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public void TextOverTheInputLimitIsRefusedWithTheLimit()
    {
        var file = Path.Combine(_model.Folder, "huge.txt");
        File.WriteAllBytes(file, new byte[TokenizerLimits.Default.MaxInputBytes + 1]);
        var run = CliRunner.Run("tokenize", "--model", _model.Gguf, "--text-file", file);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"at most {TokenizerLimits.Default.MaxInputBytes} UTF-8 bytes", run.Stderr);
    }
}
