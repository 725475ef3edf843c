using System.Text;
using System.Text.Json;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Tools;
using Bulwark.Server.Backends.Upstream;
using Bulwark.Server.Hosting;
using Bulwark.Server.Requests;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Hosting;

namespace Bulwark.Server.Tests.Gateway;

/// <summary>
/// Tool calling for models an upstream serves: tools, tool_choice and the conversation's calls go to the upstream
/// as the client sent them, and its tool_calls come back in OpenAI's shape, whole and streamed, through the
/// gateway's own output guard. The upstreams are Bulwark servers that read Hermes calls, held by ToolCallingTests.
/// </summary>
public sealed class GatewayToolCallTests
{
    private const string Secret = "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5";

    private const string Reply =
        "On it.<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}}</tool_call>" +
        "<tool_call>{\"name\": \"get_time\", \"arguments\": {\"timezone\": \"" + Secret + "\"}}</tool_call>";

    private const string Tools = """
        [{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}},
         {"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"timezone":{"type":"string"}}}}}]
        """;

    private static string Body(bool stream, string choice = "\"auto\"") =>
        "{\"model\":\"test-model\",\"max_tokens\":400,\"temperature\":0,\"stream\":" + (stream ? "true" : "false") + ",\"tools\":" + Tools + ",\"tool_choice\":" + choice + "," +
        "\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_0\",\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"arguments\":\"{}\"}}]}," +
        "{\"role\":\"tool\",\"tool_call_id\":\"call_0\",\"content\":\"noon\"}]}";

    private static ScriptedBackend Upstream() =>
        new(contextLength: 4096) { Reply = Reply, EndAfter = Encoding.UTF8.GetByteCount(Reply), ToolFormat = ToolCallFormat.Hermes };

    /// <summary>The answer's content, finish reason and calls (name and arguments), whole or joined from a stream's pieces.</summary>
    private static async Task<(string Content, string? Finish, List<(string Name, string Arguments)> Calls, string Raw)> AskAsync(HttpClient http, bool stream, string choice = "\"auto\"")
    {
        using var response = await http.PostAsync("v1/chat/completions", new StringContent(Body(stream, choice), Encoding.UTF8, "application/json"));
        var raw = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, raw);
        var content = new StringBuilder();
        string? finish = null;
        var calls = new SortedDictionary<int, (string Name, StringBuilder Arguments)>();
        var choices = stream
            ? RawHttp.Events(raw).Where(e => e != "[DONE]").Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0]).ToList()
            : [JsonDocument.Parse(raw).RootElement.GetProperty("choices")[0]];
        foreach (var c in choices)
        {
            var part = c.GetProperty(stream ? "delta" : "message");
            if (part.TryGetProperty("content", out var text) && text.ValueKind == JsonValueKind.String) content.Append(text.GetString());
            if (c.GetProperty("finish_reason").ValueKind == JsonValueKind.String) finish = c.GetProperty("finish_reason").GetString();
            if (!part.TryGetProperty("tool_calls", out var pieces)) continue;
            var position = 0;
            foreach (var piece in pieces.EnumerateArray())
            {
                var index = stream ? piece.GetProperty("index").GetInt32() : position++;
                var function = piece.GetProperty("function");
                if (!calls.TryGetValue(index, out var call)) calls[index] = call = ("", new StringBuilder());
                if (function.TryGetProperty("name", out var name)) calls[index] = call = (name.GetString()!, call.Arguments);
                call.Arguments.Append(function.GetProperty("arguments").GetString());
                if (piece.TryGetProperty("id", out var id)) Assert.StartsWith("call_", id.GetString());
            }
        }
        return (content.ToString(), finish, [.. calls.Values.Select(c => (c.Name, c.Arguments.ToString()))], raw);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AnUpstreamsCallsReachTheClientWithTheGatewaysGuardOnTheArguments(bool stream)
    {
        // The upstream does not redact: the secret it writes must be redacted by the gateway.
        await using var gateway = await TestGateway.StartAsync([Upstream()], upstream: new() { [ServerSettings.RedactSecretsKey] = "false" });
        var direct = await AskAsync(gateway.Upstreams[0].Http, stream);
        Assert.Contains(Secret, direct.Calls[1].Arguments);

        var relayed = await AskAsync(gateway.Http, stream);
        Assert.Equal("tool_calls", relayed.Finish);
        Assert.Equal("On it.", relayed.Content);
        Assert.Equal(["get_weather", "get_time"], relayed.Calls.Select(c => c.Name));
        Assert.Equal(direct.Calls[0], relayed.Calls[0]);
        Assert.DoesNotContain("ghp_", relayed.Raw);
        Assert.Contains("[REDACTED:", JsonDocument.Parse(relayed.Calls[1].Arguments).RootElement.GetProperty("timezone").GetString());
    }

    [Fact]
    public async Task ToolChoiceIsRelayedSoNoneGivesTheUpstreamsPlainText()
    {
        await using var gateway = await TestGateway.StartAsync([Upstream()]);
        var relayed = await AskAsync(gateway.Http, stream: false, "\"none\"");
        Assert.Equal("stop", relayed.Finish);
        Assert.Empty(relayed.Calls);
        Assert.StartsWith("On it.<tool_call>", relayed.Content);
    }

    [Fact]
    public void TheBodyCarriesToolsChoiceAndTheConversationsCallsAsOpenAiWritesThem()
    {
        using var tools = JsonDocument.Parse(Tools);
        var request = new GenerationRequest
        {
            Model = "m",
            Messages =
            [
                new ChatMessage("assistant", "", null) { NullContent = true, ToolCalls = [new ToolCallMessage("call_1", "get_time", "{\"timezone\": \"UTC\"}")] },
                new ChatMessage("tool", "noon") { ToolCallId = "call_1" },
            ],
            Tools = new ToolRequest([new ToolFunction("get_time", null)], tools.RootElement, ToolChoice.Function, "get_time", Parallel: false),
        };
        var body = JsonDocument.Parse(OpenAiWire.Body(request, "m", stream: true)).RootElement;
        Assert.True(JsonElement.DeepEquals(tools.RootElement, body.GetProperty("tools")));
        Assert.Equal("""{"type":"function","function":{"name":"get_time"}}""", body.GetProperty("tool_choice").GetRawText());
        Assert.False(body.GetProperty("parallel_tool_calls").GetBoolean());
        using var messages = JsonDocument.Parse("""[{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_time","arguments":"{\"timezone\": \"UTC\"}"}}]},{"role":"tool","content":"noon","tool_call_id":"call_1"}]""");
        Assert.True(JsonElement.DeepEquals(messages.RootElement, body.GetProperty("messages")), body.GetProperty("messages").GetRawText());
        var auto = JsonDocument.Parse(OpenAiWire.Body(request with { Tools = request.Tools with { Choice = ToolChoice.Auto, Parallel = true } }, "m", stream: true)).RootElement;
        Assert.Equal("auto", auto.GetProperty("tool_choice").GetString());
        Assert.False(auto.TryGetProperty("parallel_tool_calls", out _));
    }

    [Fact]
    public void StreamedAndWholeToolCallsAreReadAsPiecesAndAnAbsurdIndexIsAFailure()
    {
        var deltas = new List<ChoiceDelta>();
        OpenAiWire.Chunk("""{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]}""", true, 1, deltas);
        OpenAiWire.Chunk("""{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\""}}]},"finish_reason":null}]}""", true, 1, deltas);
        OpenAiWire.Chunk("""{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}""", true, 1, deltas);
        Assert.Equal(new ToolCallDelta(0, "call_a", "f", ""), Assert.Single(deltas[0].ToolCalls!));
        Assert.Equal(new ToolCallDelta(0, null, null, "{\"x\""), Assert.Single(deltas[1].ToolCalls!));
        Assert.Equal(FinishReason.Stop, deltas[2].Finish);

        var whole = new List<ChoiceDelta>();
        OpenAiWire.Whole("""{"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function","function":{"name":"f","arguments":"{}"}},{"id":"call_b","type":"function","function":{"name":"g","arguments":"{\"y\":1}"}}]},"finish_reason":"tool_calls"}]}"""u8, true, 1, whole);
        Assert.Equal([new ToolCallDelta(0, "call_a", "f", "{}"), new ToolCallDelta(1, "call_b", "g", "{\"y\":1}")], whole[0].ToolCalls!);
        Assert.Equal("", whole[0].Text);

        Assert.Throws<InvalidDataException>(() => OpenAiWire.Chunk("""{"choices":[{"index":0,"delta":{"tool_calls":[{"index":5000,"function":{"arguments":"x"}}]}}]}""", true, 1, []));
    }
}
