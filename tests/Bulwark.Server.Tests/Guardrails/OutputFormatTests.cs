using System.Text;
using System.Text.Json;
using Bulwark.Server.Guardrails.Output;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Hosting;

namespace Bulwark.Server.Tests.Guardrails;

/// <summary>HTML escaping of outputs (streaming-safe) and the check of JSON <c>response_format</c> outputs.</summary>
public sealed class OutputFormatTests
{
    private static readonly Dictionary<char, string> Entities = new() { ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;", ['\''] = "&#39;" };

    /// <summary>The slow twin: one character at a time through a table.</summary>
    private static string SlowEscape(string text) => string.Concat(text.Select(c => Entities.TryGetValue(c, out var e) ? e : c.ToString()));

    [Fact]
    public void EscapingMatchesItsTwinAndNeverSplitsAnEntityAcrossPieces()
    {
        var random = new Random(8);
        const string alphabet = "ab <>&\"'é😀\n;#";
        for (var round = 0; round < 500; round++)
        {
            var text = new string(Enumerable.Range(0, random.Next(0, 40)).Select(_ => alphabet[random.Next(alphabet.Length)]).ToArray());
            Assert.Equal(SlowEscape(text), HtmlEscaper.Escape(text));
            var pieces = new List<string>();
            for (var i = 0; i < text.Length;)
            {
                var n = Math.Min(text.Length - i, random.Next(1, 5));
                pieces.Add(HtmlEscaper.Escape(text.Substring(i, n)));
                i += n;
            }
            Assert.Equal(SlowEscape(text), string.Concat(pieces));
            foreach (var piece in pieces) AssertWholeEntities(piece);
        }
        const string plain = "nothing to escape here";
        Assert.Same(plain, HtmlEscaper.Escape(plain));
    }

    private static void AssertWholeEntities(string piece)
    {
        for (var i = 0; i < piece.Length; i++)
        {
            if (piece[i] != '&') continue;
            Assert.Contains(Entities.Values, e => string.CompareOrdinal(piece, i, e, 0, e.Length) == 0);
        }
        Assert.DoesNotContain('<', piece);
    }

    private const string Markup = "<script>alert('x')</script> & \"more\" ";

    private static string Chat(bool stream, object? responseFormat = null) => JsonSerializer.Serialize(new Dictionary<string, object?>
    {
        ["model"] = "test-model", ["stream"] = stream, ["max_tokens"] = 60, ["temperature"] = 0,
        ["messages"] = new[] { new { role = "user", content = "x" } },
        ["response_format"] = responseFormat,
    });

    [Theory]
    [InlineData("true", null, true)]
    [InlineData(null, "default", true)]   // the test key's tenant
    [InlineData(null, "other", false)]
    [InlineData("false", null, false)]
    public async Task HtmlEscapingAppliesToOptedInTenantsStreamedAndWhole(string? all, string? tenant, bool escaped)
    {
        var settings = new Dictionary<string, string?>();
        if (all is not null) settings["Bulwark:Guardrails:Output:HtmlEscape"] = all;
        if (tenant is not null) settings["Bulwark:Guardrails:Output:HtmlEscapeTenants:0"] = tenant;
        await using var server = await RunningServer.StartAsync(new ScriptedBackend { Reply = Markup }, settings);
        var expected = string.Concat(Enumerable.Repeat(Markup, 2))[..60];
        var expectedText = escaped ? SlowEscape(expected) : expected;

        var (status, body, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(stream: false));
        Assert.Equal(200, status);
        Assert.Equal(expectedText, body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());

        var (_, _, response) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(stream: true));
        var events = RawHttp.Events(await response.Content.ReadAsStringAsync());
        var streamed = new StringBuilder();
        foreach (var e in events[..^1])
        {
            var delta = JsonDocument.Parse(e).RootElement.GetProperty("choices")[0].GetProperty("delta");
            if (!delta.TryGetProperty("content", out var content)) continue;
            if (escaped) AssertWholeEntities(content.GetString()!);
            streamed.Append(content.GetString());
        }
        Assert.Equal(expectedText, streamed.ToString());
    }

    [Fact]
    public async Task HtmlEscapingAlsoCoversTextCompletionsAndTgi()
    {
        await using var server = await RunningServer.StartAsync(new ScriptedBackend { Reply = Markup }, new() { ["Bulwark:Guardrails:Output:HtmlEscape"] = "true" });
        var expected = SlowEscape(Markup[..20]);
        var (_, text, _) = await RawHttp.PostJsonAsync(server.Http, "v1/completions",
            JsonSerializer.Serialize(new { model = "test-model", prompt = "x", max_tokens = 20, temperature = 0 }));
        Assert.Equal(expected, text.GetProperty("choices")[0].GetProperty("text").GetString());
        var (_, tgi, _) = await RawHttp.PostJsonAsync(server.Http, "generate",
            JsonSerializer.Serialize(new { inputs = "x", parameters = new { max_new_tokens = 20 } }));
        Assert.Equal(expected, tgi.GetProperty("generated_text").GetString());
    }

    [Fact]
    public async Task HtmlEscapingCoversLogprobTokenTexts()
    {
        await using var server = await RunningServer.StartAsync(new ScriptedBackend { Reply = Markup }, new() { ["Bulwark:Guardrails:Output:HtmlEscape"] = "true" });
        var (_, text, _) = await RawHttp.PostJsonAsync(server.Http, "v1/completions",
            JsonSerializer.Serialize(new { model = "test-model", prompt = "x", max_tokens = 20, temperature = 0, logprobs = 1 }));
        var logprobs = text.GetProperty("choices")[0].GetProperty("logprobs");
        var tokens = logprobs.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToList();
        Assert.Equal(SlowEscape(Markup[..20]), string.Concat(tokens));
        Assert.Equal("&lt;", tokens[0]); // one token, one escaped character: the token keeps its own text
        Assert.Equal("&lt;", logprobs.GetProperty("top_logprobs")[0].EnumerateObject().Single().Name); // the scripted first alternative is the chosen token
    }

    [Fact]
    public async Task HtmlEscapingComposesWithRedactionAndSkipsJsonOutputs()
    {
        const string token = "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5";
        var reply = "{\"html\": \"<b>" + token + "</b>\"}";
        var backend = new ScriptedBackend { Reply = reply, EndAfter = Encoding.UTF8.GetByteCount(reply) };
        await using var server = await RunningServer.StartAsync(backend, new() { ["Bulwark:Guardrails:Output:HtmlEscape"] = "true" });
        var (_, body, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(stream: false));
        var text = body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString();
        Assert.Equal(SlowEscape(reply.Replace(token, "[REDACTED:github-token]")), text);

        var (_, jsonBody, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(stream: false, new { type = "json_object" }));
        var choice = jsonBody.GetProperty("choices")[0];
        Assert.Equal(reply.Replace(token, "[REDACTED:github-token]"), choice.GetProperty("message").GetProperty("content").GetString());
        Assert.True(choice.GetProperty("format_check").GetProperty("valid").GetBoolean());
    }

    private static readonly object PersonSchema = new
    {
        type = "json_schema",
        json_schema = new
        {
            name = "person",
            schema = new
            {
                type = "object",
                properties = new { name = new { type = "string" }, age = new { type = "integer" } },
                required = new[] { "name", "age" },
                additionalProperties = false,
            },
        },
    };

    [Theory]
    [InlineData("{\"name\": \"Ada\", \"age\": 36}", true, null)]
    [InlineData("{\"name\": \"Ada\", \"age\": \"36\"}", false, "$.age: expected integer; got string")]
    [InlineData("{\"name\": \"Ada\"}", false, "$: required property 'age' is missing")]
    [InlineData("{\"name\": \"Ada\", \"age\": 36, \"x\": 1}", false, "$: property 'x' is not allowed (additionalProperties is false)")]
    [InlineData("Sure! {\"name\": \"Ada\"}", false, "the output is not valid JSON")]
    public async Task JsonSchemaOutputsAreCheckedAndTheVerdictRidesOnTheFinishedChoice(string reply, bool valid, string? error)
    {
        var backend = new ScriptedBackend { Reply = reply, EndAfter = Encoding.UTF8.GetByteCount(reply) };
        await using var server = await RunningServer.StartAsync(backend);

        var (status, body, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(stream: false, PersonSchema));
        Assert.Equal(200, status);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal(reply, choice.GetProperty("message").GetProperty("content").GetString());
        AssertCheck(choice.GetProperty("format_check"), valid, error);

        var (_, _, response) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(stream: true, PersonSchema));
        var events = RawHttp.Events(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0]).ToList();
        Assert.All(chunks[..^1], c => Assert.False(c.TryGetProperty("format_check", out _)));
        Assert.Equal("stop", chunks[^1].GetProperty("finish_reason").GetString());
        AssertCheck(chunks[^1].GetProperty("format_check"), valid, error);
    }

    [Fact]
    public async Task PlainRequestsCarryNoFormatCheckAndJsonObjectWantsAnObject()
    {
        const string reply = "[1, 2, 3]";
        await using var server = await RunningServer.StartAsync(new ScriptedBackend { Reply = reply, EndAfter = reply.Length });
        var (_, plain, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(stream: false));
        Assert.False(plain.GetProperty("choices")[0].TryGetProperty("format_check", out _));
        var (_, json, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(stream: false, new { type = "json_object" }));
        AssertCheck(json.GetProperty("choices")[0].GetProperty("format_check"), false, "$: the output must be a JSON object; got array");
    }

    private static void AssertCheck(JsonElement check, bool valid, string? error)
    {
        Assert.Equal(valid, check.GetProperty("valid").GetBoolean());
        if (error is null) Assert.False(check.TryGetProperty("error", out _));
        else Assert.StartsWith(error, check.GetProperty("error").GetString());
    }

    private static JsonOutputFormat Schema(string json) => JsonOutputFormat.JsonSchema(JsonDocument.Parse(json).RootElement, "schema");

    [Theory]
    [InlineData("""{"type":"object","properties":{"n":{"type":"integer"}}}""", """{"n": 2}""", null)]
    [InlineData("""{"type":"object","properties":{"n":{"type":"integer"}}}""", """{"n": 2.0}""", null)]
    [InlineData("""{"type":"object","properties":{"n":{"type":"integer"}}}""", """{"n": 2.5}""", "$.n: expected integer; got number")]
    [InlineData("""{"type":"object","properties":{"n":{"type":["integer","null"]}}}""", """{"n": null}""", null)]
    [InlineData("""{"type":"object","properties":{"n":{"type":"number"}}}""", """{"n": true}""", "$.n: expected number; got boolean")]
    [InlineData("""{"type":"object","properties":{"c":{"enum":["red","green"]}}}""", """{"c": "green"}""", null)]
    [InlineData("""{"type":"object","properties":{"c":{"enum":["red","green"]}}}""", """{"c": "blue"}""", "$.c: \"blue\" is not one of the allowed values [\"red\",\"green\"]")]
    [InlineData("""{"type":"object","properties":{"l":{"type":"array","items":{"type":"object","required":["id"]}}}}""", """{"l": [{"id": 1}, {}]}""", "$.l[1]: required property 'id' is missing")]
    [InlineData("""{"type":"object","properties":{"l":{"type":"array","items":{"type":"string"}}}}""", """{"l": []}""", null)]
    [InlineData("""{"type":"object","properties":{"o":{"type":"object","properties":{"p":{"type":"string"}}}}}""", """{"o": {"p": 1}}""", "$.o.p: expected string; got integer")]
    [InlineData("""{"type":"object","additionalProperties":true,"title":"t","description":"d"}""", """{"any": [1]}""", null)]
    [InlineData("""{"type":"object","properties":{"never":false}}""", """{"never": 1}""", "$.never: no value is allowed here")]
    [InlineData("""{"anyOf":[{"type":"integer"},{"type":"string","minLength":2}]}""", "\"a\"", "$: matches none of the anyOf schemas")]
    [InlineData("""{"type":"string","pattern":"^[a-z]+$"}""", "\"abc\"", null)]
    [InlineData("""{"type":"string","pattern":"^[a-z]+$"}""", "\"ab1\"", "$: \"ab1\" does not match the pattern")]
    [InlineData("""{"$defs":{"n":{"type":"integer","minimum":3}},"type":"object","properties":{"v":{"$ref":"#/$defs/n"}}}""", """{"v": 2}""", "$.v: 2 is below the minimum 3")]
    [InlineData("""{"type":"array","items":{"type":"integer"},"maxItems":1}""", "[1,2]", "$: expected at most 1 items; got 2")]
    [InlineData("""{"type":"string","format":"uuid"}""", "\"123e4567-e89b-12d3-a456-426614174000\"", null)]
    public void SchemaSubsetValidation(string schema, string output, string? error)
    {
        var check = Schema(schema).Check(output);
        Assert.Equal(error is null, check.Valid);
        Assert.Equal(error, check.Error);
    }

    [Theory]
    [InlineData("""{"type":"string","format":"email"}""", "schema.format: format 'email' is not supported")]
    [InlineData("""{"anyOf":[]}""", "schema.anyOf: anyOf must be a non-empty array")]
    [InlineData("""{"type":"text"}""", "schema.type: type must be one of object, array, string, number, integer, boolean, null")]
    [InlineData("""{"properties":{"a":{"type":"number","maximum":1}}}""", "schema.properties.a.maximum: 'maximum' on a number is not enforced")]
    [InlineData("""{"required":"a"}""", "schema.required: required must be an array of property names")]
    [InlineData("""{"type":"object","patternProperties":{"a":{}}}""", "schema.patternProperties: keyword 'patternProperties' is not supported")]
    [InlineData("""{"enum":[]}""", "schema.enum: enum must be a non-empty array")]
    [InlineData("[]", "schema: a schema must be an object or a boolean; got array")]
    public void SchemasBeyondTheSubsetAreRefusedNamingThePathAndKeyword(string schema, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => Schema(schema));
        Assert.StartsWith(message, e.Message);
    }

    [Fact]
    public void SchemaDepthIsCheckedAtItsLimit()
    {
        string Nested(int depth) => depth == 0 ? """{"type":"string"}""" : $$"""{"type":"array","items":{{Nested(depth - 1)}}}""";
        Schema(Nested(JsonOutputFormat.MaxSchemaDepth));
        Assert.Contains("at most 32 levels", Assert.Throws<ArgumentException>(() => Schema(Nested(JsonOutputFormat.MaxSchemaDepth + 1))).Message);
    }
}
