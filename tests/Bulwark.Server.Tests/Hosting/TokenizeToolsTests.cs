using Bulwark.Server.Tests.Api;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>
/// <c>/tokenize</c> of a chat with <c>tools</c> on the embedded engine, under a template that renders them: the count is the
/// <c>usage.prompt_tokens</c> the chat route charges for the same body, whatever the tool choice.
/// </summary>
public sealed class TokenizeToolsTests
{
    private const string Messages = "\"model\":\"alphabet\",\"messages\":[{\"role\":\"user\",\"content\":\"What is the weather?\"}]";
    private const string Tools = ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"weather\",\"description\":\"The weather of a city\",\"parameters\":" + ToolEnforcementTests.Weather + "}}]";

    [Fact]
    public async Task TokenizeRendersToolsAsTheChatRouteDoesSoItCountsThePromptTokensCharged()
    {
        using var backend = AlphabetModel.Backend(template: ToolEnforcementTests.Template);
        await using var server = await RunningServer.StartAsync(backend);
        async Task<int> Count(string fields)
        {
            var (status, body, _) = await RawHttp.PostJsonAsync(server.Http, "tokenize", "{" + fields + "}");
            Assert.True(status == 200, body.ToString());
            return body.GetProperty("count").GetInt32();
        }

        var without = await Count(Messages);
        foreach (var choice in new[] { "", ",\"tool_choice\":\"auto\"", ",\"tool_choice\":\"none\"", ",\"tool_choice\":\"required\"", ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"weather\"}}" })
        {
            var count = await Count(Messages + Tools + choice);
            var (status, chat, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", "{" + Messages + Tools + choice + ",\"max_tokens\":1}");
            Assert.True(status == 200, chat.ToString());
            Assert.Equal(chat.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), count);
            // The tools are rendered into the prompt unless tool_choice is none, which renders none (as the chat route).
            if (choice.Contains("none")) Assert.Equal(without, count);
            else Assert.True(count > without + 20, $"{choice}: {count} tokens with tools, {without} without");
        }

        // The chat route's 400s for tools hold here too.
        var (refused, error, _) = await RawHttp.PostJsonAsync(server.Http, "tokenize", "{" + Messages + Tools + ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"nope\"}}}");
        Assert.Equal(400, refused);
        Assert.Equal("tool_choice.function.name", RawHttp.Error(error).GetProperty("param").GetString());
    }
}
