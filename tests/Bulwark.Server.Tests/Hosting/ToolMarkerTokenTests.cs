using System.Text.Json;
using Bulwark.Engine.Serving.Constraints;
using Bulwark.Engine.Tokenizers;
using Bulwark.Engine.Tools;
using Bulwark.Server.Backends.Embedded;
using Bulwark.Server.Tests.Api;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>
/// Mistral's <c>[TOOL_CALLS]</c> is a control token in its vocabulary, and decoding drops control tokens. On a request
/// whose calls are read it is written as its text, so the call is found; and under <c>required</c> the grammar lets the
/// model write it as the one token it knows. The model: the alphabet model with <c>&lt;|system|&gt;</c> (id 3) replaced
/// by a control token <c>[TOOL_CALLS]</c>.
/// </summary>
public sealed class ToolMarkerTokenTests
{
    private const int Marker = 3;

    private static ITokenizer Tokenizer() => AlphabetModel.Tokenizer(control3: "[TOOL_CALLS]");

    private const string Template =
        "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}{% if tools %}(calls: [TOOL_CALLS][...]){% endif %}{% if add_generation_prompt %}<|assistant|>{% endif %}";

    private static EmbeddedBackend Backend() => AlphabetModel.Backend(template: Template, tokenizer: Tokenizer());

    [Fact]
    public void TheMarkerDetokenizerWritesTheMarkerThePlainDecoderDrops()
    {
        var tokenizer = Tokenizer();
        int[] ids = [Marker, .. "[{\"name\": \"f\"}]"u8.ToArray().Select(b => AlphabetModel.FirstByte + b)];
        Assert.Equal("[{\"name\": \"f\"}]", tokenizer.Decode(ids));
        var marked = new EmbeddedBackend.MarkerDetokenizer(tokenizer, ToolCallFormats.MarkerTokens(tokenizer));
        Assert.Equal("[TOOL_CALLS][{\"name\": \"f\"}]", string.Concat(ids.Select(marked.Push)) + marked.Flush());
        Assert.Equal([Marker], ToolCallFormats.MarkerTokens(tokenizer));
    }

    [Fact]
    public void TheToolVocabularyAllowsTheMarkerTokenAndTheOrdinaryOneDoesNot()
    {
        var tokenizer = Tokenizer();
        Assert.Null(TokenVocabulary.From(tokenizer, AlphabetModel.Vocab).BytesOf(Marker));
        Assert.Equal("[TOOL_CALLS]"u8.ToArray(), TokenVocabulary.From(tokenizer, AlphabetModel.Vocab, [Marker]).BytesOf(Marker));
    }

    [Fact]
    public async Task RequiredCallsWrittenWithTheMarkerTokenAreReadBack()
    {
        using var backend = Backend();
        Assert.Equal(ToolCallFormat.Mistral, backend.Model.ToolFormat);
        await using var server = await RunningServer.StartAsync(backend);
        int finished = 0, markerTokens = 0;
        for (var seed = 1; seed <= 12; seed++)
        {
            var (status, body, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions",
                "{\"model\":\"alphabet\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":120,\"temperature\":1,\"seed\":" + seed * 1_000_003 + ",\"logprobs\":true," +
                "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9}},\"required\":[\"n\"]}}}]," +
                "\"tool_choice\":\"required\",\"parallel_tool_calls\":false}");
            Assert.Equal(200, status);
            var choice = body.GetProperty("choices")[0];
            if (choice.GetProperty("finish_reason").GetString() == "length") continue;
            finished++;
            Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
            var call = Assert.Single(choice.GetProperty("message").GetProperty("tool_calls").EnumerateArray());
            Assert.Equal("f", call.GetProperty("function").GetProperty("name").GetString());
            var arguments = call.GetProperty("function").GetProperty("arguments").GetString()!;
            Assert.InRange(JsonDocument.Parse(arguments).RootElement.GetProperty("n").GetInt32(), 0, 9);
            // The call is all the choice wrote: no content, so no logprobs listed (the marker token included).
            Assert.Empty(choice.GetProperty("logprobs").GetProperty("content").EnumerateArray());
            // One token per byte of the call's text, or 11 fewer when the model wrote the marker as its one control token
            // (the grammar allows that or its bytes).
            var layoutBytes = System.Text.Encoding.UTF8.GetByteCount("[TOOL_CALLS][{\"name\": \"f\", \"arguments\": " + arguments + "}]");
            if (body.GetProperty("usage").GetProperty("completion_tokens").GetInt32() < layoutBytes) markerTokens++;
        }
        Assert.True(finished >= 3, $"only {finished} finished");
        Assert.True(markerTokens > 0, "no completion began with the marker token; the test proves little");
    }
}
