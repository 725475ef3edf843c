using System.Text.Json;
using Bulwark.Server.Tests.Api;
using Json.Schema;
using OpenAI.Chat;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>
/// <c>tool_choice: required</c> and a named function on the embedded engine, through the HTTP API: the byte-fallback
/// alphabet model at temperature 1 writes random bytes wherever the grammar lets it, under a chat template that shows
/// the Hermes format, and every finished choice is a call of a declared function whose arguments validate.
/// </summary>
public sealed class ToolEnforcementTests
{
    internal const string Template =
        "{{ bos_token }}{% if tools %}<|system|>Call with <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call>: {{ tools | tojson }}{% endif %}" +
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";

    internal const string Weather = """{"type":"object","properties":{"city":{"type":"string","maxLength":8},"days":{"type":"integer","minimum":1,"maximum":7}},"required":["city","days"],"additionalProperties":false}""";
    private const string Time = """{"type":"object","properties":{"zone":{"enum":["UTC","CET","Asia/Tokyo"]}},"required":["zone"]}""";

    private static string Chat(string choice, int seed) =>
        "{\"model\":\"alphabet\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":300,\"temperature\":1,\"seed\":" + seed + ",\"n\":2," +
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"weather\",\"parameters\":" + Weather + "}},{\"type\":\"function\",\"function\":{\"name\":\"time\",\"parameters\":" + Time + "}}]," +
        "\"tool_choice\":" + choice + "}";

    [Theory]
    [InlineData("\"required\"", null)]
    [InlineData("{\"type\":\"function\",\"function\":{\"name\":\"time\"}}", "time")]
    public async Task EveryFinishedChoiceIsACallWhoseArgumentsValidate(string choice, string? named)
    {
        using var backend = AlphabetModel.Backend(template: Template);
        await using var server = await RunningServer.StartAsync(backend);
        var schemas = new Dictionary<string, JsonSchema> { ["weather"] = JsonSchema.FromText(Weather), ["time"] = JsonSchema.FromText(Time) };
        var finished = 0;
        for (var seed = 0; seed < 4; seed++)
        {
            var (status, body, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(choice, seed));
            Assert.Equal(200, status);
            foreach (var c in body.GetProperty("choices").EnumerateArray())
            {
                if (c.GetProperty("finish_reason").GetString() == "length") continue;
                Assert.Equal("tool_calls", c.GetProperty("finish_reason").GetString());
                finished++;
                var message = c.GetProperty("message");
                Assert.Equal(JsonValueKind.Null, message.GetProperty("content").ValueKind);
                foreach (var call in message.GetProperty("tool_calls").EnumerateArray())
                {
                    var name = call.GetProperty("function").GetProperty("name").GetString()!;
                    if (named is not null) Assert.Equal(named, name);
                    var arguments = call.GetProperty("function").GetProperty("arguments").GetString()!;
                    using var parsed = JsonDocument.Parse(arguments);
                    Assert.True(schemas[name].Evaluate(parsed.RootElement).IsValid, arguments);
                }
            }
        }
        Assert.True(finished >= 4, $"only {finished} choices finished");
    }

    [Fact]
    public async Task TheOpenAiSdkWithARequiredToolGetsAValidCall()
    {
        using var backend = AlphabetModel.Backend(template: Template);
        await using var server = await RunningServer.StartAsync(backend);
        var chat = server.OpenAI().GetChatClient("alphabet");
#pragma warning disable OPENAI001 // Seed is marked experimental in the SDK
        var options = new ChatCompletionOptions { Temperature = 1, Seed = 3, MaxOutputTokenCount = 300, ToolChoice = ChatToolChoice.CreateRequiredChoice(), AllowParallelToolCalls = false };
#pragma warning restore OPENAI001
        options.Tools.Add(ChatTool.CreateFunctionTool("time", "The time in a zone", BinaryData.FromString(Time)));
        ChatCompletion reply = await chat.CompleteChatAsync([new UserChatMessage("hi")], options);
        Assert.Equal(ChatFinishReason.ToolCalls, reply.FinishReason);
        var call = Assert.Single(reply.ToolCalls);
        Assert.Equal("time", call.FunctionName);
        using var arguments = JsonDocument.Parse(call.FunctionArguments.ToString());
        Assert.True(JsonSchema.FromText(Time).Evaluate(arguments.RootElement).IsValid, call.FunctionArguments.ToString());

        var streamed = new System.Text.StringBuilder();
        string? name = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("hi")], options))
            foreach (var piece in update.ToolCallUpdates)
            {
                name ??= piece.FunctionName;
                streamed.Append(piece.FunctionArgumentsUpdate?.ToString());
            }
        // The same seed draws the same call.
        Assert.Equal("time", name);
        Assert.Equal(call.FunctionArguments.ToString(), streamed.ToString());
    }
}
