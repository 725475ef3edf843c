using System.Text;
using System.Text.Json;
using Bulwark.Server.Tests.Api;
using Json.Schema;
using OpenAI.Chat;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>
/// Structured output through the HTTP API on the embedded engine: the byte-fallback alphabet model at
/// temperature 1 writes random bytes wherever the grammar lets it (UTF-8 characters split over
/// byte tokens included), and every finished choice is valid, by the independent validator and by the
/// server's own after-the-fact check, which must now always pass.
/// </summary>
public sealed class StructuredOutputTests
{
    private const string Schema = """
        {"type":"object","properties":{"word":{"type":"string","maxLength":6},"n":{"type":"integer","minimum":-3,"maximum":42},
         "tags":{"type":"array","items":{"enum":["a","bé"]},"maxItems":2},"ok":{"type":["boolean","null"]}},
         "required":["word","n","ok"],"additionalProperties":false}
        """;

    private static string Chat(string extra, int seed) =>
        $$"""{"model":"alphabet","messages":[{"role":"user","content":"hi"}],"max_tokens":400,"temperature":1,"seed":{{seed}},"n":2{{extra}}}""";

    [Fact]
    public async Task JsonSchemaOutputAlwaysValidatesAndPassesTheServersOwnCheck()
    {
        using var backend = AlphabetModel.Backend();
        await using var server = await RunningServer.StartAsync(backend);
        var validator = JsonSchema.FromText(Schema);
        var finished = 0;
        for (var seed = 0; seed < 6; seed++)
        {
            var (status, body, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions",
                Chat(",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"r\",\"strict\":" + (seed % 2 == 0 ? "true" : "false") + ",\"schema\":" + Schema + "}}", seed));
            Assert.Equal(200, status);
            foreach (var choice in body.GetProperty("choices").EnumerateArray())
            {
                if (choice.GetProperty("finish_reason").GetString() != "stop") continue;
                finished++;
                var text = choice.GetProperty("message").GetProperty("content").GetString()!;
                using var output = JsonDocument.Parse(text);
                Assert.True(validator.Evaluate(output.RootElement).IsValid, text);
                Assert.True(choice.GetProperty("format_check").GetProperty("valid").GetBoolean(), text);
            }
        }
        Assert.True(finished >= 6, $"only {finished} choices finished");
    }

    [Fact]
    public async Task JsonObjectRegexChoiceAndTgiGrammarAreEnforced()
    {
        using var backend = AlphabetModel.Backend();
        await using var server = await RunningServer.StartAsync(backend);

        var (_, obj, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(""","max_tokens":60,"response_format":{"type":"json_object"}""", 1).Replace("\"max_tokens\":400,", ""));
        foreach (var choice in obj.GetProperty("choices").EnumerateArray())
        {
            var text = choice.GetProperty("message").GetProperty("content").GetString()!;
            if (choice.GetProperty("finish_reason").GetString() == "stop") Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(text).RootElement.ValueKind);
            else Assert.StartsWith("{", text);
        }

        var (_, regex, _) = await RawHttp.PostJsonAsync(server.Http, "v1/completions",
            """{"model":"alphabet","prompt":"hi","max_tokens":30,"temperature":1,"seed":3,"n":3,"guided_regex":"[A-Z][a-zé]{1,4} (19|20)\\d\\d"}""");
        foreach (var choice in regex.GetProperty("choices").EnumerateArray())
        {
            Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
            Assert.Matches("^[A-Z][a-zé]{1,4} (19|20)[0-9][0-9]\\z", choice.GetProperty("text").GetString()!);
        }

        var (_, pick, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(""","guided_choice":["left","right","ünder"]""", 2));
        foreach (var choice in pick.GetProperty("choices").EnumerateArray())
            Assert.Contains(choice.GetProperty("message").GetProperty("content").GetString(), new[] { "left", "right", "ünder" });

        var (status, tgi, _) = await RawHttp.PostJsonAsync(server.Http, "generate",
            """{"inputs":"hi","parameters":{"max_new_tokens":200,"do_sample":true,"seed":5,"grammar":{"type":"json","value":{"type":"array","items":{"type":"integer","minimum":0,"maximum":9},"minItems":1,"maxItems":3}}}}""");
        Assert.Equal(200, status);
        var generated = JsonDocument.Parse(tgi.GetProperty("generated_text").GetString()!).RootElement;
        Assert.InRange(generated.GetArrayLength(), 1, 3);
        Assert.All(generated.EnumerateArray(), v => Assert.InRange(v.GetInt32(), 0, 9));

        var (_, tgiRegex, _) = await RawHttp.PostJsonAsync(server.Http, "generate",
            """{"inputs":"hi","parameters":{"max_new_tokens":40,"do_sample":true,"seed":6,"grammar":{"type":"regex","value":"(yes|no), [0-9]{3}"}}}""");
        Assert.Matches("^(yes|no), [0-9]{3}\\z", tgiRegex.GetProperty("generated_text").GetString()!);
    }

    [Fact]
    public async Task MaxTokensInsideAnUnfinishedValueEndsWithLength()
    {
        using var backend = AlphabetModel.Backend();
        await using var server = await RunningServer.StartAsync(backend);
        var (_, body, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions",
            """{"model":"alphabet","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"temperature":0,"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object","properties":{"long":{"type":"string","minLength":50}},"required":["long"]}}}}""");
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.StartsWith("{", choice.GetProperty("message").GetProperty("content").GetString());
    }

    [Fact]
    public async Task TheOfficialOpenAiClientGetsSchemaValidOutput()
    {
        using var backend = AlphabetModel.Backend();
        await using var server = await RunningServer.StartAsync(backend);
        var chat = server.OpenAI().GetChatClient("alphabet");
#pragma warning disable OPENAI001 // Seed is marked experimental in the SDK; it makes the two calls comparable
        var options = new ChatCompletionOptions
        {
            Temperature = 1,
            Seed = 11,
            MaxOutputTokenCount = 400,
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("reply", BinaryData.FromString(Schema), jsonSchemaIsStrict: true),
        };
#pragma warning restore OPENAI001
        ChatCompletion reply = await chat.CompleteChatAsync([new UserChatMessage("hi")], options);
        Assert.Equal(ChatFinishReason.Stop, reply.FinishReason);
        using var output = JsonDocument.Parse(reply.Content[0].Text);
        Assert.True(JsonSchema.FromText(Schema).Evaluate(output.RootElement).IsValid, reply.Content[0].Text);

        var streamed = new StringBuilder();
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("hi")], options))
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
        Assert.Equal(reply.Content[0].Text, streamed.ToString());
    }
}
