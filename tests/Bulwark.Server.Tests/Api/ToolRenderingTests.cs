using System.Text.Json;
using System.Text.Json.Nodes;
using Bulwark.Engine.Templates;
using Bulwark.Server.Api;
using Bulwark.Server.Backends;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Api;

/// <summary>
/// A conversation with tools as an OpenAI client sends it (arguments as a JSON string) goes through the contract
/// stage and the prompt stage's message JSON, then each real chat template in the fixtures; the text must be what
/// Python Jinja2 rendered for the same conversation in Hugging Face's convention (arguments as an object).
/// </summary>
public sealed class ToolRenderingTests
{
    public static IEnumerable<object[]> Pairs() =>
        TemplateFixtures.Pairs(c => c.Name is "tools_available" or "tool_call_roundtrip" && c.Value.GetProperty("status").GetString() == "ok");

    [FixtureTheory]
    [MemberData(nameof(Pairs))]
    public void ToolsAndCallsRenderAsJinja2RendersThem(string template, string caseName)
    {
        var testCase = TemplateFixtures.Case(caseName);

        // As an OpenAI client sends it: a call's arguments are a string.
        var messages = JsonNode.Parse(testCase.GetProperty("messages").GetRawText())!.AsArray();
        foreach (var call in messages.SelectMany(m => m!["tool_calls"]?.AsArray() ?? []))
            call!["function"]!["arguments"] = call["function"]!["arguments"]!.ToJsonString();
        var body = new JsonObject { ["messages"] = messages, ["tools"] = JsonNode.Parse(testCase.GetProperty("tools").GetRawText()) };
        using var request = JsonDocument.Parse(body.ToJsonString());
        var read = ChatCompletionParser.ReadMessages(new JsonFields(request.RootElement, ""), new ApiLimits());

        var chat = ChatTemplate.Parse(TemplateFixtures.TemplateSource(template), clock: TemplateFixtures.FrozenClock);
        var rendered = chat.RenderChat(PromptEncoder.ToJson(read), request.RootElement.GetProperty("tools"), testCase.GetProperty("add_generation_prompt").GetBoolean(),
            TemplateFixtures.Variables(template, caseName));

        Assert.Equal(TemplateFixtures.Expected(template, caseName), rendered);
    }
}
