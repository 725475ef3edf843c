using System.Text.Json;
using Bulwark.Server.Tests.Hosting;

namespace Bulwark.Server.Tests.Api;

/// <summary>The exact shapes on the wire: OpenAI chunks, [DONE], usage chunk, n choices, text completions, TGI.</summary>
public sealed class StreamingFormatTests(StreamingFormatTests.Server server) : IClassFixture<StreamingFormatTests.Server>
{
    public sealed class Server : IAsyncLifetime
    {
        public RunningServer Running { get; private set; } = null!;
        public async Task InitializeAsync() => Running = await RunningServer.StartAsync(new ScriptedBackend { EndAfter = 6 });
        public async Task DisposeAsync() => await Running.DisposeAsync();
    }

    private async Task<(string ContentType, List<string> Events)> StreamAsync(string path, string json)
    {
        var (status, _, response) = await RawHttp.PostJsonAsync(server.Running.Http, path, json);
        Assert.Equal(200, status);
        var text = await response.Content.ReadAsStringAsync();
        return (response.Content.Headers.ContentType!.MediaType!, RawHttp.Events(text));
    }

    [Fact]
    public async Task ChatStreamIsOpenAiChunksThenUsageThenDone()
    {
        var (type, events) = await StreamAsync("v1/chat/completions",
            """{"model":"test-model","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":4,"stream":true,"stream_options":{"include_usage":true}}""");

        Assert.Equal("text/event-stream", type);
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.All(chunks, c =>
        {
            Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString());
            Assert.StartsWith("chatcmpl-", c.GetProperty("id").GetString());
            Assert.Equal("test-model", c.GetProperty("model").GetString());
        });
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
        var first = chunks[0].GetProperty("choices")[0];
        Assert.Equal("assistant", first.GetProperty("delta").GetProperty("role").GetString());
        var content = string.Concat(chunks.SkipLast(1).Select(c => c.GetProperty("choices")[0].GetProperty("delta")).Select(d => d.TryGetProperty("content", out var t) ? t.GetString() : ""));
        Assert.Equal("Hell", content);
        Assert.Equal("length", chunks[^2].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.All(chunks.SkipLast(1), c => Assert.Equal(JsonValueKind.Null, c.GetProperty("usage").ValueKind));
        var usage = chunks[^1];
        Assert.Equal(0, usage.GetProperty("choices").GetArrayLength());
        Assert.Equal(4, usage.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task StreamWithoutIncludeUsageHasNoUsageField()
    {
        var (_, events) = await StreamAsync("v1/chat/completions",
            """{"model":"test-model","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":2,"stream":true}""");

        Assert.All(events[..^1], e => Assert.False(JsonDocument.Parse(e).RootElement.TryGetProperty("usage", out _)));
    }

    [Fact]
    public async Task EndOfSequenceFinishesWithStop()
    {
        var (_, events) = await StreamAsync("v1/chat/completions",
            """{"model":"test-model","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":20,"stream":true}""");

        var last = JsonDocument.Parse(events[^2]).RootElement.GetProperty("choices")[0];
        Assert.Equal("stop", last.GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task EveryChoiceOfNStreamsToItsOwnFinish()
    {
        var (_, events) = await StreamAsync("v1/chat/completions",
            """{"model":"test-model","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":3,"n":3,"stream":true}""");

        var choices = events[..^1].Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0]).ToList();
        for (var i = 0; i < 3; i++)
        {
            var mine = choices.Where(c => c.GetProperty("index").GetInt32() == i).ToList();
            Assert.Equal("Hel", string.Concat(mine.Select(c => c.GetProperty("delta").TryGetProperty("content", out var t) ? t.GetString() : "")));
            Assert.Single(mine, c => c.GetProperty("finish_reason").ValueKind == JsonValueKind.String);
            Assert.Equal("assistant", mine[0].GetProperty("delta").GetProperty("role").GetString());
        }
    }

    [Fact]
    public async Task NonStreamingNReturnsNChoicesAndCountsEveryToken()
    {
        var (status, body, _) = await RawHttp.PostJsonAsync(server.Running.Http, "v1/chat/completions",
            """{"model":"test-model","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":3,"n":2}""");

        Assert.Equal(200, status);
        Assert.Equal(2, body.GetProperty("choices").GetArrayLength());
        Assert.Equal(6, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task TextCompletionUsesTheLegacyShapeAndLogprobs()
    {
        var (status, body, _) = await RawHttp.PostJsonAsync(server.Running.Http, "v1/completions",
            """{"model":"test-model","prompt":"Once","temperature":0,"max_tokens":3,"logprobs":2}""");

        Assert.Equal(200, status);
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("Hel", choice.GetProperty("text").GetString());
        var logprobs = choice.GetProperty("logprobs");
        Assert.Equal(["H", "e", "l"], logprobs.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal([0, 1, 2], logprobs.GetProperty("text_offset").EnumerateArray().Select(t => t.GetInt32()));
        Assert.Equal(2, logprobs.GetProperty("top_logprobs")[0].EnumerateObject().Count());
        Assert.Equal(4, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Theory]
    [InlineData("""[79,110,99,101]""")]
    [InlineData("""[[79,110,99,101]]""")]
    [InlineData("""["Once"]""")]
    public async Task TextCompletionTakesTokenIdsOrOneStringInAnArray(string prompt)
    {
        var (status, body, _) = await RawHttp.PostJsonAsync(server.Running.Http, "v1/completions",
            $$"""{"model":"test-model","prompt":{{prompt}},"temperature":0,"max_tokens":2}""");

        Assert.Equal(200, status);
        Assert.Equal(4, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Theory]
    [InlineData("""{"prompt":["a","b"]}""", "prompt")]
    [InlineData("""{"prompt":[1,257]}""", "prompt[1]")]
    [InlineData("""{"prompt":"a","echo":true}""", "echo")]
    [InlineData("""{"prompt":"a","suffix":"b"}""", "suffix")]
    [InlineData("""{"prompt":"a","logprobs":6}""", "logprobs")]
    [InlineData("""{}""", "prompt")]
    public async Task TextCompletionRefusesWhatItCannotServe(string json, string param)
    {
        var body = json.Replace("{", """{"model":"test-model",""", StringComparison.Ordinal).Replace(",}", "}", StringComparison.Ordinal);
        var (status, error, _) = await RawHttp.PostJsonAsync(server.Running.Http, "v1/completions", body);

        Assert.Equal(400, status);
        Assert.Equal(param, RawHttp.Error(error).GetProperty("param").GetString());
    }

    [Fact]
    public async Task TextCompletionDefaultsToSixteenTokens()
    {
        var backend = new ScriptedBackend();
        await using var running = await RunningServer.StartAsync(backend);
        var (_, body, _) = await RawHttp.PostJsonAsync(running.Http, "v1/completions", """{"model":"test-model","prompt":"x","temperature":0}""");

        Assert.Equal(16, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task TgiGenerateAnswersWithGeneratedTextAndDetails()
    {
        var (status, body, _) = await RawHttp.PostJsonAsync(server.Running.Http, "generate",
            """{"inputs":"Once","parameters":{"max_new_tokens":20,"details":true,"stop":["lo"]}}""");

        Assert.Equal(200, status);
        Assert.Equal("Hel", body.GetProperty("generated_text").GetString());
        var details = body.GetProperty("details");
        Assert.Equal("stop_sequence", details.GetProperty("finish_reason").GetString());
        Assert.Equal(5, details.GetProperty("generated_tokens").GetInt32());
        Assert.Equal(5, details.GetProperty("tokens").GetArrayLength());
    }

    [Fact]
    public async Task TgiStreamSendsTokensAndFinishesWithGeneratedText()
    {
        var (_, events) = await StreamAsync("generate_stream", """{"inputs":"Once","parameters":{"max_new_tokens":20}}""");

        var parsed = events.Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.Equal(6, parsed.Count);
        Assert.Equal("Hello ", string.Concat(parsed.Select(e => e.GetProperty("token").GetProperty("text").GetString())));
        Assert.All(parsed[..^1], e => Assert.Equal(JsonValueKind.Null, e.GetProperty("generated_text").ValueKind));
        Assert.Equal("Hello ", parsed[^1].GetProperty("generated_text").GetString());
        Assert.Equal("eos_token", parsed[^1].GetProperty("details").GetProperty("finish_reason").GetString());
        Assert.Equal([1, 2, 3, 4, 5, 6], parsed.Select(e => e.GetProperty("index").GetInt32()));
    }

    [Fact]
    public async Task TokenizeAndDetokenizeRoundTrip()
    {
        var (_, tokens, _) = await RawHttp.PostJsonAsync(server.Running.Http, "tokenize", """{"model":"test-model","prompt":"héllo"}""");
        Assert.Equal(6, tokens.GetProperty("count").GetInt32());
        Assert.Equal(256, tokens.GetProperty("max_model_len").GetInt32());

        var ids = tokens.GetProperty("tokens").GetRawText();
        var (_, text, _) = await RawHttp.PostJsonAsync(server.Running.Http, "detokenize", $$"""{"tokens":{{ids}}}""");
        Assert.Equal("héllo", text.GetProperty("prompt").GetString());
    }

    [Fact]
    public async Task TokenizeRendersChatMessagesWithTheTemplate()
    {
        var (_, tokens, _) = await RawHttp.PostJsonAsync(server.Running.Http, "tokenize", """{"messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal("<user>hi\n<assistant>".Length, tokens.GetProperty("count").GetInt32());
    }

    [Fact]
    public async Task DetokenizeRefusesIdsOutsideTheVocabulary()
    {
        var (status, body, _) = await RawHttp.PostJsonAsync(server.Running.Http, "detokenize", """{"tokens":[1,-1]}""");
        Assert.Equal(400, status);
        Assert.Equal("tokens[1]", RawHttp.Error(body).GetProperty("param").GetString());
    }
}
