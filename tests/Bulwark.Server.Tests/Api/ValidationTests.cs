using System.Text.Json.Nodes;
using Bulwark.Server.Tests.Hosting;

namespace Bulwark.Server.Tests.Api;

/// <summary>Every validation rule of the chat endpoint at, below and above its limit, over raw HTTP.</summary>
public sealed class ValidationTests(ValidationTests.Server server) : IClassFixture<ValidationTests.Server>
{
    public sealed class Server : IAsyncLifetime
    {
        public RunningServer Running { get; private set; } = null!;

        public async Task InitializeAsync() => Running = await RunningServer.StartAsync(new ScriptedBackend(contextLength: 256), new()
        {
            ["Bulwark:Limits:MaxTokens"] = "32",
            ["Bulwark:Limits:MaxChoices"] = "4",
            ["Bulwark:Limits:MaxMessages"] = "3",
            ["Bulwark:Limits:MaxStopLength"] = "8",
            ["Bulwark:Limits:MaxIdentifierLength"] = "16",
            ["Bulwark:Limits:MaxRequestBodyBytes"] = "4096",
            ["Bulwark:Limits:MaxLogitBiasEntries"] = "5",
        });

        public async Task DisposeAsync() => await Running.DisposeAsync();
    }

    /// <summary>A valid chat body with <paramref name="fragment"/>'s fields set over it.</summary>
    internal static string Body(string fragment)
    {
        var body = JsonNode.Parse("""{"model":"test-model","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"temperature":0}""")!.AsObject();
        foreach (var (key, value) in JsonNode.Parse(fragment)!.AsObject().ToList())
            body[key] = value?.DeepClone();
        return body.ToJsonString();
    }

    private static string Stops(int count, int length) =>
        "[" + string.Join(",", Enumerable.Range(0, count).Select(i => $"\"{new string((char)('A' + i), length)}\"")) + "]";

    public static TheoryData<string, int, string?> Cases => new()
    {
        // max_tokens and max_completion_tokens: 1..32 (the configured limit)
        { """{"max_tokens":0}""", 400, "max_tokens" },
        { """{"max_tokens":1}""", 200, null },
        { """{"max_tokens":32}""", 200, null },
        { """{"max_tokens":33}""", 400, "max_tokens" },
        { """{"max_tokens":2.5}""", 400, "max_tokens" },
        { """{"max_completion_tokens":0}""", 400, "max_completion_tokens" },
        { """{"max_completion_tokens":32}""", 200, null },
        { """{"max_completion_tokens":33}""", 400, "max_completion_tokens" },
        // temperature 0..2
        { """{"temperature":-0.01}""", 400, "temperature" },
        { """{"temperature":0}""", 200, null },
        { """{"temperature":2}""", 200, null },
        { """{"temperature":2.01}""", 400, "temperature" },
        { """{"temperature":"hot"}""", 400, "temperature" },
        // top_p (0,1]
        { """{"top_p":0}""", 400, "top_p" },
        { """{"top_p":0.001}""", 200, null },
        { """{"top_p":1}""", 200, null },
        { """{"top_p":1.001}""", 400, "top_p" },
        // speculative: an object; method ngram|draft_model|none; num_speculative_tokens 1..16; prompt_lookup_max 1..8; prompt_lookup_min 1..max
        { """{"speculative":true}""", 400, "speculative" },
        { """{"speculative":null}""", 200, null },
        { """{"speculative":{}}""", 200, null },
        { """{"speculative":{"method":"none"}}""", 200, null },
        { """{"speculative":{"method":"eagle"}}""", 400, "speculative.method" },
        { """{"speculative":{"method":"draft_model"}}""", 200, null }, // parsed; an embedded model without a draft model refuses it (DraftModelServeTests)
        { """{"speculative":{"method":"ngram","num_speculative_tokens":0}}""", 400, "speculative.num_speculative_tokens" },
        { """{"speculative":{"method":"ngram","num_speculative_tokens":1}}""", 200, null },
        { """{"speculative":{"method":"ngram","num_speculative_tokens":16}}""", 200, null },
        { """{"speculative":{"method":"ngram","num_speculative_tokens":17}}""", 400, "speculative.num_speculative_tokens" },
        { """{"speculative":{"prompt_lookup_max":0}}""", 400, "speculative.prompt_lookup_max" },
        { """{"speculative":{"prompt_lookup_max":8}}""", 200, null },
        { """{"speculative":{"prompt_lookup_max":9}}""", 400, "speculative.prompt_lookup_max" },
        { """{"speculative":{"prompt_lookup_min":0}}""", 400, "speculative.prompt_lookup_min" },
        { """{"speculative":{"prompt_lookup_max":2,"prompt_lookup_min":2}}""", 200, null },
        { """{"speculative":{"prompt_lookup_max":2,"prompt_lookup_min":3}}""", 400, "speculative.prompt_lookup_min" },
        // top_k -1..vocabulary, min_p 0..1, penalties
        { """{"top_k":-2}""", 400, "top_k" },
        { """{"top_k":-1}""", 200, null },
        { """{"top_k":257}""", 200, null },
        { """{"top_k":258}""", 400, "top_k" },
        { """{"min_p":-0.1}""", 400, "min_p" },
        { """{"min_p":1}""", 200, null },
        { """{"min_p":1.1}""", 400, "min_p" },
        { """{"presence_penalty":-2.01}""", 400, "presence_penalty" },
        { """{"presence_penalty":-2}""", 200, null },
        { """{"presence_penalty":2}""", 200, null },
        { """{"presence_penalty":2.01}""", 400, "presence_penalty" },
        { """{"frequency_penalty":-2.01}""", 400, "frequency_penalty" },
        { """{"frequency_penalty":2}""", 200, null },
        { """{"frequency_penalty":2.01}""", 400, "frequency_penalty" },
        { """{"repetition_penalty":0}""", 400, "repetition_penalty" },
        { """{"repetition_penalty":2}""", 200, null },
        { """{"repetition_penalty":2.01}""", 400, "repetition_penalty" },
        // n 1..4
        { """{"n":0}""", 400, "n" },
        { """{"n":1}""", 200, null },
        { """{"n":4}""", 200, null },
        { """{"n":5}""", 400, "n" },
        // stop: at most 4 strings of 1..8 characters
        { $$"""{"stop":{{Stops(4, 8)}}}""", 200, null },
        { $$"""{"stop":{{Stops(5, 1)}}}""", 400, "stop" },
        { $$"""{"stop":{{Stops(1, 9)}}}""", 400, "stop[0]" },
        { """{"stop":""}""", 400, "stop" },
        { """{"stop":"12345678"}""", 200, null },
        { """{"stop":"123456789"}""", 400, "stop" },
        { """{"stop":[1]}""", 400, "stop[0]" },
        { """{"stop":[]}""", 200, null },
        // logprobs / top_logprobs 0..20
        { """{"logprobs":true,"top_logprobs":0}""", 200, null },
        { """{"logprobs":true,"top_logprobs":20}""", 200, null },
        { """{"logprobs":true,"top_logprobs":21}""", 400, "top_logprobs" },
        { """{"logprobs":true,"top_logprobs":-1}""", 400, "top_logprobs" },
        { """{"top_logprobs":2}""", 400, "top_logprobs" },
        { """{"logprobs":"yes"}""", 400, "logprobs" },
        // logit_bias: ids within the vocabulary, values -100..100
        { """{"logit_bias":{"5":100,"6":-100}}""", 200, null },
        { """{"logit_bias":{"5":100.5}}""", 400, "logit_bias.5" },
        { """{"logit_bias":{"5":-101}}""", 400, "logit_bias.5" },
        { """{"logit_bias":{"abc":1}}""", 400, "logit_bias" },
        { """{"logit_bias":{"257":1}}""", 400, "logit_bias" },
        { """{"logit_bias":{"256":1}}""", 200, null },
        { """{"logit_bias":[1]}""", 400, "logit_bias" },
        { """{"logit_bias":{"1":1,"2":1,"3":1,"4":1,"5":1}}""", 200, null },
        { """{"logit_bias":{"1":1,"2":1,"3":1,"4":1,"5":1,"6":1}}""", 400, "logit_bias" },
        // seed: any 64-bit integer
        { """{"seed":-9223372036854775808}""", 200, null },
        { """{"seed":9223372036854775807}""", 200, null },
        { """{"seed":9223372036854775808}""", 400, "seed" },
        { """{"seed":1.5}""", 400, "seed" },
        // messages: 1..3, known roles, text content
        { """{"messages":[]}""", 400, "messages" },
        { """{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}""", 200, null },
        { """{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"user","content":"c"},{"role":"user","content":"d"}]}""", 400, "messages" },
        { """{"messages":[{"role":"wizard","content":"a"}]}""", 400, "messages[0].role" },
        { """{"messages":[{"content":"a"}]}""", 400, "messages[0].role" },
        { """{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]}""", 200, null },
        { """{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}""", 400, "messages[0].content[0].type" },
        { """{"messages":[{"role":"user","content":5}]}""", 400, "messages[0].content" },
        { """{"messages":"hi"}""", 400, "messages" },
        { """{"messages":null}""", 400, "messages" },
        // model
        { """{"model":"other"}""", 404, "model" },
        { """{"model":null}""", 400, "model" },
        { """{"model":7}""", 400, "model" },
        // user: at most 16 characters
        { """{"user":"0123456789abcdef"}""", 200, null },
        { """{"user":"0123456789abcdefg"}""", 400, "user" },
        // streaming options and formats
        { """{"stream_options":{"include_usage":true}}""", 400, "stream_options" },
        { """{"response_format":{"type":"text"}}""", 200, null },
        { """{"response_format":{"type":"json_object"}}""", 200, null },
        { """{"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}}}}""", 200, null },
        { """{"response_format":{"type":"json_schema","json_schema":{}}}""", 400, "response_format.json_schema.schema" },
        { """{"response_format":{"type":"json_schema"}}""", 400, "response_format.json_schema" },
        { """{"response_format":{"type":"json_schema","json_schema":{"schema":{"type":"string","pattern":"^a"},"strict":true}}}""", 200, null },
        { """{"response_format":{"type":"json_schema","json_schema":{"schema":{"type":"string","format":"email"}}}}""", 400, "response_format.json_schema.schema.format" },
        { """{"response_format":{"type":"json_schema","json_schema":{"schema":{"type":"decimal"}}}}""", 400, "response_format.json_schema.schema.type" },
        { """{"response_format":{"type":"json_schema","json_schema":{"schema":{"type":"object","properties":{"a":{"type":"array","uniqueItems":true}}}}}}""", 400, "response_format.json_schema.schema.properties.a.uniqueItems" },
        // vLLM's guided decoding: one constraint at a time, each compiled or refused
        { """{"guided_json":{"type":"object","properties":{"a":{"type":"integer"}}}}""", 200, null },
        { """{"guided_json":"{\"type\":\"boolean\"}"}""", 200, null },
        { """{"guided_json":"{not json"}""", 400, "guided_json" },
        { """{"guided_regex":"[a-z]{2,5}"}""", 200, null },
        { """{"guided_regex":"(a"}""", 400, "guided_regex" },
        { """{"guided_regex":"(?=a)a"}""", 400, "guided_regex" },
        { """{"guided_choice":["yes","no"]}""", 200, null },
        { """{"guided_choice":[]}""", 400, "guided_choice" },
        { """{"guided_choice":["yes",3]}""", 400, "guided_choice[1]" },
        { """{"guided_choice":["yes"],"guided_regex":"a"}""", 400, "guided_choice" },
        { """{"guided_json":{},"response_format":{"type":"json_object"}}""", 400, "guided_json" },
        { """{"guided_grammar":"root ::= \"a\""}""", 400, "guided_grammar" },
        { """{"response_format":{"type":"yaml"}}""", 400, "response_format.type" },
        { """{"tools":[{"type":"function","function":{"name":"f"}}]}""", 200, null }, // every tool rule: ToolValidationTests
        // unknown fields are ignored, as OpenAI does; explicit nulls mean "default"
        { """{"some_future_field":{"x":1},"temperature":null,"stop":null}""", 200, null },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public Task EachRuleIsEnforcedAtItsLimit(string fragment, int status, string? param) => AssertRule(server.Running.Http, fragment, status, param);

    /// <summary>The chat body with <paramref name="fragment"/> gets <paramref name="status"/>, and a refusal names <paramref name="param"/> in its param and message.</summary>
    internal static async Task AssertRule(HttpClient http, string fragment, int status, string? param)
    {
        var (actual, body, _) = await RawHttp.PostJsonAsync(http, "v1/chat/completions", Body(fragment));

        Assert.True(status == actual, $"{fragment}: expected {status}, got {actual}: {body}");
        if (status == 200) return;
        var error = RawHttp.Error(body);
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Contains(param!.Split('[', '.')[0], error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task ErrorMessageNamesFieldValueAndLimit()
    {
        var (_, body, _) = await RawHttp.PostJsonAsync(server.Running.Http, "v1/chat/completions", Body("""{"max_tokens":100000}"""));

        var error = RawHttp.Error(body);
        Assert.Equal("max_tokens must be between 1 and 32; got 100000.", error.GetProperty("message").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("invalid_value", error.GetProperty("code").GetString());
    }

    [Theory]
    [InlineData("{", "invalid_json")]
    [InlineData("", "invalid_json")]
    [InlineData("{\"model\":\"test-model\",}", "invalid_json")]
    [InlineData("[1,2]", "invalid_type")]
    [InlineData("\"text\"", "invalid_type")]
    public async Task MalformedJsonIsABadRequestNeverAServerError(string json, string code)
    {
        var (status, body, _) = await RawHttp.PostJsonAsync(server.Running.Http, "v1/chat/completions", json);

        Assert.Equal(400, status);
        Assert.Equal(code, RawHttp.Error(body).GetProperty("code").GetString());
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    public async Task WrongContentTypeIsUnsupportedMediaType(string contentType)
    {
        var (status, body, _) = await RawHttp.PostJsonAsync(server.Running.Http, "v1/chat/completions", Body("{}"), contentType);

        Assert.Equal(415, status);
        Assert.Contains("application/json", RawHttp.Error(body).GetProperty("message").GetString());
    }

    [Fact]
    public async Task JsonWithCharsetIsAccepted()
    {
        var (status, _, _) = await RawHttp.PostJsonAsync(server.Running.Http, "v1/chat/completions", Body("{}"), "application/json; charset=utf-8");
        Assert.Equal(200, status);
    }

    [Theory]
    [InlineData(4096, 200)]
    [InlineData(4097, 413)]
    [InlineData(1_000_000, 413)]
    public async Task BodyAboveTheLimitIsRefusedWith413(int size, int expected)
    {
        var padding = size - Body("""{"pad":""}""").Length;
        var json = Body($$"""{"pad":"{{new string('x', padding)}}"}""");
        Assert.Equal(size, json.Length);

        // Kestrel closes the connection after a 413; a fresh client keeps the other cases off that connection.
        // The client waits for "100 Continue" before sending the body, so a refusal that comes before the
        // server reads the body is not lost to a write on the closed connection (a broken pipe on a busy machine).
        using var http = server.Running.Client(server.Running.ApiKey);
        http.DefaultRequestHeaders.ExpectContinue = true;
        var (status, body, _) = await RawHttp.PostJsonAsync(http, "v1/chat/completions", json);

        Assert.Equal(expected, status);
        if (expected == 413) Assert.Equal("request_too_large", RawHttp.Error(body).GetProperty("code").GetString());
    }

    [Fact]
    public async Task ChunkedBodyAboveTheLimitIsRefusedWith413()
    {
        using var http = server.Running.Client(server.Running.ApiKey);
        using var response = await RawHttp.PostChunkedAsync(http, "v1/chat/completions", Body($$"""{"pad":"{{new string('x', 8000)}}"}"""));

        Assert.Equal(413, (int)response.StatusCode);
    }

    [Fact]
    public async Task PromptPlusMaxTokensMustFitTheContext()
    {
        // The chat template wraps "hi" into this many tokens; the context is 256.
        var prompt = "<user>hi\n<assistant>".Length;
        var longMessage = new string('a', 256 - prompt - 32);
        var fits = Body($$"""{"messages":[{"role":"user","content":"hi{{longMessage}}"}],"max_tokens":32}""");
        var over = Body($$"""{"messages":[{"role":"user","content":"hi{{longMessage}}a"}],"max_tokens":32}""");

        Assert.Equal(200, (await RawHttp.PostJsonAsync(server.Running.Http, "v1/chat/completions", fits)).Status);
        var (status, body, _) = await RawHttp.PostJsonAsync(server.Running.Http, "v1/chat/completions", over);
        Assert.Equal(400, status);
        var error = RawHttp.Error(body);
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        Assert.Contains("maximum context length is 256 tokens", error.GetProperty("message").GetString());
        Assert.Contains("you requested 257 tokens (225 in the prompt, 32 in the completion)", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task UnknownRouteIsNotFoundInOpenAiShape()
    {
        var (status, body, _) = await RawHttp.PostJsonAsync(server.Running.Http, "v1/audio/speech", "{}");
        Assert.Equal(404, status);
        Assert.Equal("unknown_url", RawHttp.Error(body).GetProperty("code").GetString());
    }
}
