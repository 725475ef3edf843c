using System.Text.Json;
using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tests.Cli;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Templates;

/// <summary>
/// <c>bulwark template</c>: the fixture templates rendered through the command line give
/// Jinja2's bytes exactly; model folders and GGUF files supply their template and tokens.
/// </summary>
public sealed class TemplateCommandTests : IDisposable
{
    private readonly string _folder = Fixtures.NewTempDirectory("template-cli");

    public void Dispose()
    {
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }

    /// <summary>Fixture pairs whose template does not read the clock (the command line uses the real one).</summary>
    public static IEnumerable<object[]> ClocklessPairs() => TemplateFixtures.Pairs()
        .Where(p => !Fixtures.Available || !TemplateFixtures.TemplateSource((string)p[0]).Contains("strftime_now", StringComparison.Ordinal));

    [FixtureTheory]
    [MemberData(nameof(ClocklessPairs))]
    public void RenderingIsJinja2sBytesOrTheTemplatesError(string template, string caseName)
    {
        var testCase = TemplateFixtures.Case(caseName);
        var expectation = TemplateFixtures.Expectation(template, caseName);
        var messages = Write("messages.json", testCase.GetProperty("messages").GetRawText());
        List<string> args = ["template", "--template", Path.Combine(TemplateFixtures.Folder, template + ".jinja"), "--messages", messages];
        if (testCase.GetProperty("tools").ValueKind != JsonValueKind.Null)
            args.AddRange(["--tools", Write("tools.json", testCase.GetProperty("tools").GetRawText())]);
        if (testCase.GetProperty("add_generation_prompt").GetBoolean()) args.Add("--add-generation-prompt");
        foreach (var variable in expectation.GetProperty("variables_besides_messages_tools_documents_add_generation_prompt").EnumerateObject())
            args.AddRange(["--var-json", $"{variable.Name}={variable.Value.GetRawText()}"]);

        var run = CliRunner.Run([.. args]);
        var expected = Path.Combine(TemplateFixtures.Folder, "expected", template, caseName);
        if (expectation.GetProperty("status").GetString() == "ok")
        {
            Assert.Equal("", run.Stderr);
            Assert.Equal(0, run.ExitCode);
            Assert.Equal(File.ReadAllText(expected + ".txt"), run.Stdout);
            return;
        }
        Assert.Equal(1, run.ExitCode);
        Assert.Equal("", run.Stdout);
        if (expectation.GetProperty("raised_by_template").GetBoolean())
            Assert.Equal("error: " + File.ReadAllText(expected + ".error") + "\n", run.Stderr);
    }

    private const string Messages = """[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]""";

    private const string ChatMlRendering = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";

    [Fact]
    public void AGgufModelSuppliesItsTemplate()
    {
        var gguf = Path.Combine(_folder, "model.gguf");
        SyntheticModel.WriteGguf(SmallModel, gguf);
        var run = CliRunner.Run("template", "--model", gguf, "--messages", Write("m.json", Messages), "--add-generation-prompt");
        Assert.Equal((0, ""), (run.ExitCode, run.Stderr));
        Assert.Equal(ChatMlRendering, run.Stdout);
    }

    [Fact]
    public void AHuggingFaceFolderSuppliesItsTemplateAndSpecialTokens()
    {
        var folder = Path.Combine(_folder, "hf");
        Directory.CreateDirectory(folder);
        SyntheticModel.WriteSafetensors(SmallModel with { ChatTemplate = "{{ bos_token }}|{{ eos_token }}|" + SyntheticModel.ChatMlTemplate }, folder);
        var run = CliRunner.Run("template", "--model", folder, "--messages", Write("m.json", Messages));
        Assert.Equal((0, ""), (run.ExitCode, run.Stderr));
        Assert.Equal("<|endoftext|>|<|im_end|>|" + ChatMlRendering[..^"<|im_start|>assistant\n".Length], run.Stdout);

        var overridden = CliRunner.Run("template", "--model", folder, "--messages", Write("m.json", Messages), "--var", "bos_token=<BOS>");
        Assert.StartsWith("<BOS>|<|im_end|>|", overridden.Stdout);
    }

    [Fact]
    public void ChatTemplateJinjaBesideTheConfigIsRead()
    {
        var folder = Path.Combine(_folder, "hf-jinja");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), """{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>"}""");
        File.WriteAllText(Path.Combine(folder, "chat_template.jinja"), "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{{ eos_token }}");
        var run = CliRunner.Run("template", "--model", folder, "--messages", Write("m.json", Messages));
        Assert.Equal((0, ""), (run.ExitCode, run.Stderr));
        Assert.Equal("<s>[system]Be brief.[user]Hi</s>", run.Stdout);
    }

    [Fact]
    public void VarSetsStringsAndVarJsonSetsTypedValues()
    {
        var template = Write("t.jinja", "{{ enable_thinking is false }}/{{ enable_thinking is string }}/{{ budget + 1 }}/{{ names | join(',') }}");
        var messages = Write("m.json", "[]");
        var typed = CliRunner.Run("template", "--template", template, "--messages", messages,
            "--var-json", "enable_thinking=false", "--var-json", "budget=41", "--var-json", "names=[\"a\",\"b\"]");
        Assert.Equal((0, "", "True/False/42/a,b"), (typed.ExitCode, typed.Stderr, typed.Stdout));
        var text = CliRunner.Run("template", "--template", template, "--messages", messages,
            "--var", "enable_thinking=false", "--var-json", "budget=1", "--var-json", "names=[]");
        Assert.Equal("False/True/2/", text.Stdout);
    }

    [Fact]
    public void ToolsAndTheGenerationPromptReachTheTemplate()
    {
        var template = Write("t.jinja", "{{ tools | length if tools is not none else 'none' }}{% if add_generation_prompt %}+gen{% endif %}");
        var messages = Write("m.json", "[]");
        Assert.Equal("none", CliRunner.Run("template", "--template", template, "--messages", messages).Stdout);
        var tools = Write("tools.json", """[{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "g"}}]""");
        Assert.Equal("2+gen", CliRunner.Run("template", "--template", template, "--messages", messages, "--tools", tools, "--add-generation-prompt").Stdout);
    }

    [Theory]
    [InlineData("{{ raise_exception('Only user and assistant roles are supported!') }}", "error: Only user and assistant roles are supported!")]
    [InlineData("{% for x in %}", "error: ")]
    [InlineData("{{ ''.__class__ }}", "error: ")]
    public void ATemplateErrorExitsNonZeroWithTheMessageOnStderr(string source, string stderrStart)
    {
        var run = CliRunner.Run("template", "--template", Write("bad.jinja", source), "--messages", Write("m.json", Messages));
        Assert.Equal(1, run.ExitCode);
        Assert.Equal("", run.Stdout);
        Assert.StartsWith(stderrStart, run.Stderr);
        Assert.Single(run.Stderr.TrimEnd('\n').Split('\n'));
    }

    [Theory]
    [InlineData("--var", "no_equals_sign", "--var must be NAME=VALUE")]
    [InlineData("--var-json", "x={not json", "--var-json x is not valid JSON")]
    public void AMalformedVariableIsRefusedNamingTheOption(string option, string value, string message)
    {
        var run = CliRunner.Run("template", "--template", Write("t.jinja", "x"), "--messages", Write("m.json", "[]"), option, value);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains(message, run.Stderr);
    }

    [Fact]
    public void ModelAndTemplateExcludeEachOtherAndMessagesMustBeJson()
    {
        var template = Write("t.jinja", "x");
        var both = CliRunner.Run("template", "--template", template, "--model", _folder, "--messages", Write("m.json", "[]"));
        Assert.Equal(1, both.ExitCode);
        Assert.Contains("exactly one of --model and --template", both.Stderr);
        var neither = CliRunner.Run("template", "--messages", Write("m.json", "[]"));
        Assert.Equal(1, neither.ExitCode);
        var badJson = CliRunner.Run("template", "--template", template, "--messages", Write("bad.json", "[{"));
        Assert.Equal(1, badJson.ExitCode);
        Assert.Contains("--messages", badJson.Stderr);
        var noTemplate = CliRunner.Run("template", "--model", _folder, "--messages", Write("m.json", "[]"));
        Assert.Equal(1, noTemplate.ExitCode);
        Assert.Contains("no chat template", noTemplate.Stderr);
    }

    private static SyntheticModelSpec SmallModel => new()
    {
        Layers = 1, Dim = 32, Heads = 2, KvHeads = 1, FeedForward = 64, Vocab = 512, Context = 64, ChatTemplate = SyntheticModel.ChatMlTemplate,
    };

    private string Write(string name, string content)
    {
        var path = Path.Combine(_folder, name);
        File.WriteAllText(path, content);
        return path;
    }
}
