using Bulwark.Engine.Tools;
using Bulwark.Server.Tests.Hosting;

namespace Bulwark.Server.Tests.Api;

/// <summary>Every rule of <c>tools</c>, <c>tool_choice</c>, <c>parallel_tool_calls</c> and tool messages at, below and above its limit, over raw HTTP.</summary>
public sealed class ToolValidationTests(ToolValidationTests.Server server) : IClassFixture<ToolValidationTests.Server>
{
    public sealed class Server : IAsyncLifetime
    {
        public RunningServer Running { get; private set; } = null!;

        public async Task InitializeAsync() => Running = await RunningServer.StartAsync(
            new ScriptedBackend(contextLength: 4096) { ToolFormat = ToolCallFormat.Hermes }, new()
            {
                ["Bulwark:Limits:MaxTokens"] = "4",
                ["Bulwark:Limits:MaxTools"] = "3",
                ["Bulwark:Limits:MaxToolNameLength"] = "8",
                ["Bulwark:Limits:MaxToolsBytes"] = "600",
                ["Bulwark:Limits:MaxSchemaBytes"] = "200",
                ["Bulwark:Limits:MaxSchemaDepth"] = "3",
                ["Bulwark:Limits:MaxIdentifierLength"] = "16",
            });

        public async Task DisposeAsync() => await Running.DisposeAsync();
    }

    private static string Tool(string name, string? parameters = null, int description = 0) =>
        "{\"type\":\"function\",\"function\":{\"name\":\"" + name + "\",\"description\":\"" + new string('d', description) + "\""
        + (parameters is null ? "" : ",\"parameters\":" + parameters) + "}}";

    private static string Tools(params string[] tools) => "\"tools\":[" + string.Join(",", tools) + "]";

    /// <summary>A schema of exactly <paramref name="bytes"/> bytes (at least 30).</summary>
    private static string SchemaOf(int bytes)
    {
        const string head = "{\"type\":\"object\",\"description\":\"";
        return head + new string('x', bytes - head.Length - 2) + "\"}";
    }

    /// <summary>Objects nested <paramref name="levels"/> deep below the root.</summary>
    private static string Nested(int levels) =>
        levels == 0 ? """{"type":"integer"}""" : "{\"type\":\"object\",\"properties\":{\"a\":" + Nested(levels - 1) + "}}";

    private static string Call(string id) => "{\"id\":\"" + id + "\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}";

    public static TheoryData<string, int, string?> Cases => new()
    {
        // tools: at most 3 functions, names of 1..8 characters of [A-Za-z0-9_-], unique
        { "{" + Tools(Tool("a"), Tool("b"), Tool("c")) + "}", 200, null },
        { "{" + Tools(Tool("a"), Tool("b"), Tool("c"), Tool("d")) + "}", 400, "tools" },
        { """{"tools":[]}""", 200, null },
        { "{" + Tools(Tool("abcdefgh")) + "}", 200, null },
        { "{" + Tools(Tool("abcdefghi")) + "}", 400, "tools[0].function.name" },
        { "{" + Tools(Tool("a b")) + "}", 400, "tools[0].function.name" },
        { "{" + Tools(Tool("")) + "}", 400, "tools[0].function.name" },
        { "{" + Tools(Tool("a-b_9Z")) + "}", 200, null },
        { "{" + Tools(Tool("a"), Tool("a")) + "}", 400, "tools[1].function.name" },
        { """{"tools":[{"type":"retrieval"}]}""", 400, "tools[0].type" },
        { """{"tools":[{"type":"function"}]}""", 400, "tools[0].function" },
        { """{"tools":[{"type":"function","function":{"description":"x"}}]}""", 400, "tools[0].function.name" },
        { """{"tools":[{"type":"function","function":{"name":"f","parameters":"{}"}}]}""", 400, "tools[0].function.parameters" },
        { """{"tools":{"type":"function"}}""", 400, "tools" },
        // the whole tools array: at most 600 bytes
        { "{" + Tools(Tool("a", description: 600 - Tool("a").Length - 2)) + "}", 200, null },
        { "{" + Tools(Tool("a", description: 601 - Tool("a").Length - 2)) + "}", 400, "tools" },
        // each schema: at most 200 bytes and 3 levels, every keyword enforceable
        { "{" + Tools(Tool("f", SchemaOf(200))) + "}", 200, null },
        { "{" + Tools(Tool("f", SchemaOf(201))) + "}", 400, "tools[0].function.parameters" },
        { "{" + Tools(Tool("f", Nested(3))) + "}", 200, null },
        { "{" + Tools(Tool("f", Nested(4))) + "}", 400, "tools[0].function.parameters.properties.a.properties.a.properties.a.properties.a" },
        { "{" + Tools(Tool("f", """{"type":"object","properties":{"a":{"type":"array","uniqueItems":true}}}""")) + "}", 400, "tools[0].function.parameters.properties.a.uniqueItems" },
        { "{" + Tools(Tool("f", """{"type":"object","properties":{"a":{"type":"string","format":"email"}}}""")) + "}", 400, "tools[0].function.parameters.properties.a.format" },
        // tool_choice
        { "{" + Tools(Tool("f")) + ",\"tool_choice\":\"auto\"}", 200, null },
        { "{" + Tools(Tool("f")) + ",\"tool_choice\":\"none\"}", 200, null },
        { "{" + Tools(Tool("f")) + ",\"tool_choice\":\"required\"}", 200, null },
        { "{" + Tools(Tool("f")) + ",\"tool_choice\":\"sometimes\"}", 400, "tool_choice" },
        { "{" + Tools(Tool("f")) + ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}}}", 200, null },
        { "{" + Tools(Tool("f")) + ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"g\"}}}", 400, "tool_choice.function.name" },
        { "{" + Tools(Tool("f")) + ",\"tool_choice\":{\"type\":\"function\"}}", 400, "tool_choice.function" },
        { "{" + Tools(Tool("f")) + ",\"tool_choice\":{\"type\":\"code\",\"function\":{\"name\":\"f\"}}}", 400, "tool_choice.type" },
        { "{" + Tools(Tool("f")) + ",\"tool_choice\":7}", 400, "tool_choice" },
        { """{"tool_choice":"required"}""", 400, "tool_choice" },
        { """{"tool_choice":"none"}""", 200, null },
        { "{" + Tools(Tool("f")) + ",\"tool_choice\":\"required\",\"response_format\":{\"type\":\"json_object\"}}", 400, "tool_choice" },
        { "{" + Tools(Tool("f")) + ",\"response_format\":{\"type\":\"json_object\"}}", 200, null },
        // parallel_tool_calls
        { "{" + Tools(Tool("f")) + ",\"parallel_tool_calls\":false}", 200, null },
        { "{" + Tools(Tool("f")) + ",\"parallel_tool_calls\":\"no\"}", 400, "parallel_tool_calls" },
        // the deprecated functions field
        { """{"functions":[{"name":"f"}]}""", 400, "functions" },
        // tool calls and tool results in the conversation: at most 3 calls per message, ids of at most 16 characters
        { "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[" + Call("c1") + "]},{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"2\"}]}", 200, null },
        { "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[" + Call("c1") + "," + Call("c2") + "," + Call("c3") + "]}]}", 200, null },
        { "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[" + Call("c1") + "," + Call("c2") + "," + Call("c3") + "," + Call("c4") + "]}]}", 400, "messages[0].tool_calls" },
        { "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[" + Call("0123456789abcdef") + "]}]}", 200, null },
        { "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[" + Call("0123456789abcdefg") + "]}]}", 400, "messages[0].tool_calls[0].id" },
        { "{\"messages\":[{\"role\":\"user\",\"tool_calls\":[" + Call("c1") + "]}]}", 400, "messages[0].tool_calls" },
        { """{"messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}]}""", 400, "messages[0].tool_calls[0].id" },
        { """{"messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"code","function":{"name":"f"}}]}]}""", 400, "messages[0].tool_calls[0].type" },
        { """{"messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"arguments":"{}"}}]}]}""", 400, "messages[0].tool_calls[0].function.name" },
        { """{"messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":{"a":1}}}]}]}""", 200, null },
        { """{"messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":5}}]}]}""", 400, "messages[0].tool_calls[0].function.arguments" },
        { """{"messages":[{"role":"user","content":"hi"},{"role":"tool","content":"2"}]}""", 400, "messages[1].tool_call_id" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public Task EachRuleIsEnforcedAtItsLimit(string fragment, int status, string? param) => ValidationTests.AssertRule(server.Running.Http, fragment, status, param);

    [Fact]
    public async Task RequiredOnAModelWithoutAToolCallFormatIsRefusedAndAutoIsServed()
    {
        await using var plain = await RunningServer.StartAsync(new ScriptedBackend());
        var (status, body, _) = await RawHttp.PostJsonAsync(plain.Http, "v1/chat/completions", ValidationTests.Body("{" + Tools(Tool("f")) + ",\"tool_choice\":\"required\"}"));
        Assert.Equal(400, status);
        Assert.Equal("tool_choice", RawHttp.Error(body).GetProperty("param").GetString());
        Assert.Contains("ToolCallFormats", RawHttp.Error(body).GetProperty("message").GetString());
        (status, _, _) = await RawHttp.PostJsonAsync(plain.Http, "v1/chat/completions", ValidationTests.Body("{" + Tools(Tool("f")) + "}"));
        Assert.Equal(200, status);
    }
}
