using Bulwark.Engine.Tests.Templates;
using Bulwark.Engine.Tools;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Tools;

public class ToolCallFormatsTests
{
    [FixtureTheory]
    [InlineData("Qwen-Qwen2.5-7B-Instruct", ToolCallFormat.Hermes)]
    [InlineData("Qwen-Qwen3-0.6B", ToolCallFormat.Hermes)]
    [InlineData("Qwen-QwQ-32B", ToolCallFormat.Hermes)]
    [InlineData("NousResearch-Hermes-3-Llama-3.1-8B-tool_use", ToolCallFormat.Hermes)]
    [InlineData("meta-llama-Llama-3.1-8B-Instruct", ToolCallFormat.Llama3)]
    [InlineData("meta-llama-Llama-3.2-3B-Instruct", ToolCallFormat.Llama3)]
    [InlineData("mistralai-Mistral-Nemo-Instruct-2407", ToolCallFormat.Mistral)]
    [InlineData("Mistral-Small-3.2-24B-Instruct-2506", ToolCallFormat.Mistral)]
    [InlineData("google-gemma-2-2b-it", ToolCallFormat.None)]
    [InlineData("microsoft-Phi-3.5-mini-instruct", ToolCallFormat.None)]
    public void TheFormatIsDetectedFromTheRealTemplates(string template, ToolCallFormat expected)
    {
        Assert.Equal(expected, ToolCallFormats.Detect(TemplateFixtures.TemplateSource(template)));
    }

    [Theory]
    [InlineData("hermes", ToolCallFormat.Hermes)]
    [InlineData("Qwen", ToolCallFormat.Hermes)]
    [InlineData("llama3", ToolCallFormat.Llama3)]
    [InlineData("mistral", ToolCallFormat.Mistral)]
    [InlineData("none", ToolCallFormat.None)]
    public void ConfigurationNamesParse(string name, ToolCallFormat expected)
    {
        Assert.True(ToolCallFormats.TryParse(name, out var format));
        Assert.Equal(expected, format);
    }

    [Theory]
    [InlineData("")]
    [InlineData("gpt")]
    [InlineData(null)]
    public void UnknownNamesDoNotParse(string? name) => Assert.False(ToolCallFormats.TryParse(name, out _));
}
