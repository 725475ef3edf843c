using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tools;
using Bulwark.Server.Models;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Hosting;

/// <summary><c>Bulwark:Serve:ToolCallFormats</c>: a model's tool-call format set by name wins over what its template shows; a bad name stops start-up.</summary>
public sealed class ToolCallFormatSettingTests
{
    private static string Model(string template)
    {
        var path = Path.Combine(Fixtures.NewTempDirectory("toolformat"), "m.gguf");
        SyntheticModel.WriteGguf(new SyntheticModelSpec { Vocab = 300, Context = 64, ChatTemplate = template }, path);
        return path;
    }

    [Fact]
    public void TheFormatIsDetectedFromTheTemplateUnlessTheSettingNamesOne()
    {
        var chatMl = new ModelSource("m", Model(SyntheticModel.ChatMlTemplate), "test", null);
        using (var detected = chatMl.LoadEmbedded(new ServeOptions { KvCacheMemory = "1MiB" }))
            Assert.Equal(ToolCallFormat.None, detected.Model.ToolFormat);
        var options = new ServeOptions { KvCacheMemory = "1MiB", ToolCallFormats = { ["m"] = "hermes", ["other"] = "mistral" } };
        using (var configured = chatMl.LoadEmbedded(options))
            Assert.Equal(ToolCallFormat.Hermes, configured.Model.ToolFormat);

        var qwenLike = new ModelSource("q", Model(SyntheticModel.ChatMlTemplate + "{# <tool_call> #}"), "test", null);
        using (var detected = qwenLike.LoadEmbedded(new ServeOptions { KvCacheMemory = "1MiB" }))
            Assert.Equal(ToolCallFormat.Hermes, detected.Model.ToolFormat);
        using (var off = qwenLike.LoadEmbedded(new ServeOptions { KvCacheMemory = "1MiB", ToolCallFormats = { ["q"] = "none" } }))
            Assert.Equal(ToolCallFormat.None, off.Model.ToolFormat);
    }

    [Fact]
    public void AnUnknownFormatNameIsAStartUpError()
    {
        Assert.Empty(new ServeOptions { ToolCallFormats = { ["m"] = "llama3" } }.Validate());
        var problem = Assert.Single(new ServeOptions { ToolCallFormats = { ["m"] = "gpt" } }.Validate());
        Assert.Equal("Bulwark:Serve:ToolCallFormats:m must be one of hermes, qwen, llama3, mistral, none; got 'gpt'.", problem);
    }
}
