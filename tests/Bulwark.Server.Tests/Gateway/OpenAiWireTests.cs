using System.Text;
using System.Text.Json;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Server.Backends.Upstream;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Tests.Gateway;

/// <summary>The OpenAI wire format toward an upstream: the body Bulwark sends, the chunks it reads back.</summary>
public sealed class OpenAiWireTests
{
    private static GenerationRequest Request(SamplingParams? sampling = null) => new()
    {
        Model = "served",
        Messages = [new ChatMessage("system", "Be brief."), new ChatMessage("user", "Hi", "ada")],
        Sampling = sampling ?? new SamplingParams { Temperature = 0.5f, MaxTokens = 7 },
    };

    [Fact]
    public void AChatBodyCarriesWhatTheRequestSetAndAsksForStreamedUsage()
    {
        var body = JsonDocument.Parse(OpenAiWire.Body(Request(), "upstream-name", stream: true)).RootElement;

        Assert.Equal("chat/completions", OpenAiWire.PathOf(Request()));
        Assert.Equal("upstream-name", body.GetProperty("model").GetString());
        Assert.Equal("""[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi","name":"ada"}]""", body.GetProperty("messages").GetRawText());
        Assert.Equal(7, body.GetProperty("max_tokens").GetInt32());
        Assert.Equal(0.5, body.GetProperty("temperature").GetDouble());
        Assert.True(body.GetProperty("stream").GetBoolean());
        Assert.True(body.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
        // Fields left at "off" are not sent, so an OpenAI-strict upstream is not handed vLLM's extensions.
        foreach (var absent in new[] { "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty", "seed", "n", "stop", "logit_bias", "response_format" })
            Assert.False(body.TryGetProperty(absent, out _), absent);
    }

    [Fact]
    public void EverySamplingFieldThatIsSetIsSent()
    {
        var sampling = new SamplingParams
        {
            Temperature = 0.7f, TopP = 0.9f, TopK = 40, MinP = 0.05f, RepetitionPenalty = 1.1f, PresencePenalty = 0.5f, FrequencyPenalty = -0.5f,
            Seed = -3, N = 3, StopStrings = ["\n\n", "END"], LogitBias = new Dictionary<int, float> { [42] = -100 }, MaxTokens = 5,
        };
        var schema = JsonDocument.Parse("""{"type":"object"}""").RootElement;
        var request = new GenerationRequest { Model = "m", Prompt = PromptInput.FromTokens([1, 2, 3]), Sampling = sampling, ResponseFormat = new ResponseFormat("json_schema", schema) };
        var body = JsonDocument.Parse(OpenAiWire.Body(request, "m", stream: true)).RootElement;

        Assert.Equal("completions", OpenAiWire.PathOf(request));
        Assert.Equal("[1,2,3]", body.GetProperty("prompt").GetRawText());
        Assert.Equal(40, body.GetProperty("top_k").GetInt32());
        Assert.Equal(-3, body.GetProperty("seed").GetInt64());
        Assert.Equal(3, body.GetProperty("n").GetInt32());
        Assert.Equal("""["\n\n","END"]""", body.GetProperty("stop").GetRawText());
        Assert.Equal(-100, body.GetProperty("logit_bias").GetProperty("42").GetDouble());
        Assert.Equal("json_schema", body.GetProperty("response_format").GetProperty("type").GetString());
        Assert.Equal("""{"type":"object"}""", body.GetProperty("response_format").GetProperty("json_schema").GetProperty("schema").GetRawText());
        foreach (var present in new[] { "top_p", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty" })
            Assert.True(body.TryGetProperty(present, out _), present);
    }

    [Fact]
    public void GuidedConstraintsAreForwardedAsTheClientSentThem()
    {
        using var schema = JsonDocument.Parse("""{"type":"boolean"}""");
        var grammar = Bulwark.Engine.Serving.Constraints.GrammarCompiler.Json();
        string Body(OutputConstraint c) => Encoding.UTF8.GetString(OpenAiWire.Body(Request() with { Constraint = c }, "m", stream: false));
        var json = JsonDocument.Parse(Body(new OutputConstraint("guided_json", grammar) { Schema = schema.RootElement })).RootElement;
        Assert.Equal("""{"type":"boolean"}""", json.GetProperty("guided_json").GetRawText());
        var regex = JsonDocument.Parse(Body(new OutputConstraint("parameters.grammar.type", grammar) { Pattern = "a+" })).RootElement;
        Assert.Equal("a+", regex.GetProperty("guided_regex").GetString());
        var choice = JsonDocument.Parse(Body(new OutputConstraint("guided_choice", grammar) { Choices = ["x", "y"] })).RootElement;
        Assert.Equal("""["x","y"]""", choice.GetProperty("guided_choice").GetRawText());
        // response_format is written as response_format, not repeated as guided_json.
        var rf = JsonDocument.Parse(Body(new OutputConstraint("response_format", grammar) { Schema = schema.RootElement })).RootElement;
        Assert.False(rf.TryGetProperty("guided_json", out _));
    }

    [Fact]
    public void ChunksBecomeDeltasAndTheLastOneUsage()
    {
        var deltas = new List<ChoiceDelta>();
        Assert.Null(OpenAiWire.Chunk("""{"choices":[{"index":1,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}""", true, 2, deltas));
        Assert.Null(OpenAiWire.Chunk("""{"choices":[{"index":1,"delta":{},"finish_reason":"length"},{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}""", true, 2, deltas));
        var usage = OpenAiWire.Chunk("""{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}""", true, 2, deltas);
        Assert.Null(OpenAiWire.Chunk("""{"choices":[{"index":0,"text":"plain","finish_reason":"content_filter"}]}""", false, 1, deltas));

        Assert.Equal(new GenerationUsage(12, 3), usage);
        Assert.Equal(
            [new ChoiceDelta(1, "Hel", null, null, 1), new ChoiceDelta(1, "", FinishReason.Length), new ChoiceDelta(0, "x", FinishReason.Stop, null, 1), new ChoiceDelta(0, "plain", FinishReason.ContentFilter, null, 1)],
            deltas);
    }

    [Fact]
    public void AWholeResponseIsOneDeltaPerChoiceAndNoStreamIsAskedFor()
    {
        var body = JsonDocument.Parse(OpenAiWire.Body(Request(), "m", stream: false)).RootElement;
        Assert.False(body.GetProperty("stream").GetBoolean());
        Assert.False(body.TryGetProperty("stream_options", out _));

        var deltas = new List<ChoiceDelta>();
        var usage = OpenAiWire.Whole("""
            {"choices":[{"index":1,"message":{"role":"assistant","content":"b"},"finish_reason":"length"},
                        {"index":0,"message":{"role":"assistant","content":"aaaa aaaa"},"finish_reason":"stop"}],
             "usage":{"prompt_tokens":5,"completion_tokens":4}}
            """u8, true, 2, deltas);
        Assert.Equal(new GenerationUsage(5, 4), usage);
        Assert.Equal([new ChoiceDelta(1, "b", FinishReason.Length, null, 1), new ChoiceDelta(0, "aaaa aaaa", FinishReason.Stop, null, 3)], deltas);
        Assert.Throws<InvalidDataException>(() => OpenAiWire.Whole("""{"choices":[{"index":0,"text":"x"}]}"""u8, false, 2, []));
    }

    [Theory]
    [InlineData("""{"choices":[{"index":2,"delta":{"content":"x"}}]}""")] // a choice the request did not ask for
    [InlineData("""{"error":{"message":"CUDA out of memory at 0x7f..."}}""")] // an error object mid-stream
    [InlineData("""[1,2,3]""")]
    public void ChunksOutsideTheFormatAreFailuresOfTheUpstream(string chunk) =>
        Assert.Throws<InvalidDataException>(() => OpenAiWire.Chunk(chunk, true, 2, []));

    [Fact]
    public void AChunkThatIsNotJsonIsAFailureToo() => Assert.ThrowsAny<JsonException>(() => OpenAiWire.Chunk("{not json", true, 1, []));

    [Fact]
    public void LogprobsAreAskedInEachApisOwnWay()
    {
        var chat = JsonDocument.Parse(OpenAiWire.Body(Request(new SamplingParams { Logprobs = true, TopLogprobs = 3 }), "m", stream: true)).RootElement;
        Assert.True(chat.GetProperty("logprobs").GetBoolean());
        Assert.Equal(3, chat.GetProperty("top_logprobs").GetInt32());
        var completion = new GenerationRequest { Model = "m", Prompt = PromptInput.FromText("x"), Sampling = new SamplingParams { Logprobs = true, TopLogprobs = 2 } };
        var legacy = JsonDocument.Parse(OpenAiWire.Body(completion, "m", stream: false)).RootElement;
        Assert.Equal(2, legacy.GetProperty("logprobs").GetInt32());
        Assert.False(legacy.TryGetProperty("top_logprobs", out _));
    }

    [Fact]
    public void ChatLogprobsAreReadWithoutIdsAndTrimmedToTheAlternativesAsked()
    {
        var deltas = new List<ChoiceDelta>();
        OpenAiWire.Chunk("""
            {"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":{"content":[
              {"token":"H","logprob":-0.25,"bytes":[72],"top_logprobs":[{"token":"H","logprob":-0.25},{"token":"J","logprob":-2},{"token":"K","logprob":-9999}]},
              {"token":"i","logprob":0,"top_logprobs":[]}]}}]}
            """, chat: true, choices: 1, deltas, topLogprobs: 2);
        var delta = Assert.Single(deltas);
        Assert.Equal(2, delta.GeneratedTokens);
        Assert.Equal(["H", "i"], delta.Tokens!.Select(t => t.Text));
        Assert.All(delta.Tokens!, t => Assert.Equal(GeneratedToken.UnknownId, t.TokenId));
        Assert.False(delta.Tokens![0].IsClosingOnly);
        Assert.Equal([("H", -0.25f), ("J", -2f)], delta.Tokens![0].TopLogprobs!.Select(a => (a.Text, a.Logprob)));
        Assert.Empty(delta.Tokens![1].TopLogprobs!);
    }

    [Fact]
    public void LegacyLogprobsAreReadFromTheirParallelLists()
    {
        var deltas = new List<ChoiceDelta>();
        OpenAiWire.Whole("""
            {"choices":[{"index":0,"text":"ab","finish_reason":"length","logprobs":{"tokens":["a","b"],"token_logprobs":[-1.5,-0.5],
              "top_logprobs":[{"a":-1.5,"c":-2.5},{"b":-0.5}],"text_offset":[0,1]}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}
            """u8, chat: false, choices: 1, deltas, topLogprobs: 5);
        var tokens = Assert.Single(deltas).Tokens!;
        Assert.Equal([("a", -1.5f), ("b", -0.5f)], tokens.Select(t => (t.Text, t.Logprob)));
        Assert.Equal([("a", -1.5f), ("c", -2.5f)], tokens[0].TopLogprobs!.Select(a => (a.Text, a.Logprob)));
    }

    [Fact]
    public void WithoutLogprobsAskedTheUpstreamsAreIgnoredAndAChunkCountsOneToken()
    {
        var deltas = new List<ChoiceDelta>();
        OpenAiWire.Chunk("""{"choices":[{"index":0,"text":"ab","logprobs":{"tokens":["a","b"],"token_logprobs":[-1,-1]}}]}""", chat: false, choices: 1, deltas);
        Assert.Null(Assert.Single(deltas).Tokens);
        Assert.Equal(1, deltas[0].GeneratedTokens);
    }

    [Theory]
    [InlineData(true, """{"content":[{"token":"a"}]}""")]
    [InlineData(true, """{"content":[{"token":1,"logprob":-1}]}""")]
    [InlineData(true, """{"content":[{"token":"a","logprob":0.5}]}""")]
    [InlineData(true, """{"content":{"token":"a","logprob":-1}}""")]
    [InlineData(true, "[1]")]
    [InlineData(false, """{"tokens":["a","b"],"token_logprobs":[-1]}""")]
    [InlineData(false, """{"tokens":["a"],"token_logprobs":["-1"]}""")]
    [InlineData(false, """{"token_logprobs":[-1]}""")]
    public void LogprobsInNeitherShapeAreAFailureOfTheUpstream(bool chat, string logprobs)
    {
        var field = chat ? "\"delta\":{\"content\":\"a\"}" : "\"text\":\"a\"";
        var data = $$"""{"choices":[{"index":0,{{field}},"logprobs":{{logprobs}}}]}""";
        Assert.Throws<InvalidDataException>(() => OpenAiWire.Chunk(data, chat, 1, [], topLogprobs: 1));
    }

}

/// <summary>Server-Sent Events as upstreams write them, however the bytes arrive.</summary>
public sealed class SseReaderTests
{
    /// <summary>Hands out the bytes a few at a time, as a network would.</summary>
    private sealed class Trickle(byte[] bytes, int step) : MemoryStream(bytes)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(step, buffer.Length)], cancellationToken);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(4096)]
    public async Task EventsAreReadWhateverTheChunkingCrlfCommentsAndFields(int step)
    {
        var text = ": keep-alive\r\n\r\nevent: message\r\ndata: {\"a\":1}\r\n\r\ndata:{\"b\":2}\n\ndata: line one\ndata: line two\nid: 7\n\ndata: [DONE]\n\n";
        await using var reader = new SseReader(new Trickle(Encoding.UTF8.GetBytes(text), step));
        var events = new List<string>();
        while (await reader.ReadAsync(CancellationToken.None) is { } e) events.Add(e);
        Assert.Equal(["{\"a\":1}", "{\"b\":2}", "line one\nline two", "[DONE]"], events);
    }

    [Fact]
    public async Task AtTheEndCompleteLinesStillCountButAHalfLineIsNotData()
    {
        await using (var reader = new SseReader(new MemoryStream("data: last\n"u8.ToArray())))
        {
            Assert.Equal("last", await reader.ReadAsync(CancellationToken.None));
            Assert.Null(await reader.ReadAsync(CancellationToken.None));
        }
        await using (var cut = new SseReader(new MemoryStream("data: {\"a\":1}\n\ndata: {\"cho"u8.ToArray())))
        {
            Assert.Equal("{\"a\":1}", await cut.ReadAsync(CancellationToken.None));
            Assert.Null(await cut.ReadAsync(CancellationToken.None));
        }
    }

    [Fact]
    public async Task ALineLongerThanTheLimitIsRefusedInsteadOfBuffered()
    {
        var bytes = Encoding.UTF8.GetBytes("data: " + new string('x', SseReader.MaxLineBytes + 10));
        await using var reader = new SseReader(new MemoryStream(bytes));
        await Assert.ThrowsAsync<InvalidDataException>(async () => await reader.ReadAsync(CancellationToken.None));
    }
}
