using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tokenizers.Loading;
using Bulwark.Server.Api;
using Bulwark.Server.Backends;
using Bulwark.Server.Guardrails.Input;
using Bulwark.Server.Requests;
using Bulwark.Server.Tests.Hosting;
using CsCheck;

namespace Bulwark.Server.Tests.Api;

/// <summary>
/// A text prompt that provably cannot fit the context, or a field over its character limit, is refused in
/// the contract stage from the body's raw text, before the string is made: the bound at, below and above,
/// the sizes it reads against their slow twins, and what a refusal allocates against the prompt's size.
/// </summary>
public sealed class PromptLengthBoundTests
{
    private static readonly DateTimeOffset Created = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    // Context 100, no token longer than 4 bytes: a prompt of 397 bytes or more has at least 100 tokens.
    private static readonly ModelCard Model = new("m", 100, 1000, Created) { MaxInputBytesPerToken = 4 };

    private static GenerationRequest Completion(object body, ModelCard? model = null, ApiLimits? limits = null)
    {
        using var document = JsonDocument.Parse(JsonSerializer.Serialize(body));
        return TextCompletionParser.Parse(document.RootElement, model ?? Model, limits ?? new ApiLimits());
    }

    [Theory]
    [InlineData(396, false)] // below: at least 99 tokens, the exact count decides later
    [InlineData(397, true)] // at: at least 100 tokens fill the context
    [InlineData(4000, true)] // above
    public void ATextPromptIsRefusedOnceItsBytesOverTheBoundFillTheContext(int bytes, bool refused)
    {
        foreach (var (body, path) in new (object, string)[] { (new { prompt = new string('a', bytes) }, "prompt"), (new { prompt = new[] { new string('a', bytes) } }, "prompt[0]") })
        {
            var error = Record.Exception(() => Completion(body));
            if (!refused)
            {
                Assert.Null(error);
                continue;
            }
            var api = Assert.IsType<ApiException>(error);
            Assert.Equal((400, path, "context_length_exceeded"), (api.Status, api.Param, api.Code));
            Assert.Contains($"maximum context length is 100 tokens; {path} has at least {(bytes + 3) / 4} tokens ({bytes} UTF-8 bytes", api.Message);
        }
    }

    [Fact]
    public void TgiInputsAreBoundTheSameWay()
    {
        using var below = JsonDocument.Parse(JsonSerializer.Serialize(new { inputs = new string('a', 396) }));
        TgiGenerateEndpoint.Parse(below.RootElement, stream: false, Model, new ApiLimits());
        using var at = JsonDocument.Parse(JsonSerializer.Serialize(new { inputs = new string('a', 397) }));
        var error = Assert.Throws<ApiException>(() => TgiGenerateEndpoint.Parse(at.RootElement, stream: false, Model, new ApiLimits()));
        Assert.Equal(("inputs", "context_length_exceeded"), (error.Param, error.Code));
    }

    [Fact]
    public void WhatTheSanitizerMayRemoveIsNotCounted()
    {
        // 2,000 bytes of which the sanitizer keeps, with runs cut to one, "a" + " " + "b" + "\n" + "c": 5 bytes.
        var padded = "a" + new string(' ', 700) + "b" + new string('\n', 600) + "c" + new string('\u0001', 697);
        Assert.Equal(2000, Encoding.UTF8.GetByteCount(padded));
        Assert.Null(Record.Exception(() => Completion(new { prompt = padded })));
        // Multi-byte characters count their UTF-8 bytes, escaped or not: 133 × 3 bytes = 399, at least 100 tokens.
        Assert.Throws<ApiException>(() => Completion(new { prompt = new string('字', 133) }));
        Assert.Null(Record.Exception(() => Completion(new { prompt = new string('字', 132) }))); // 396 bytes
    }

    [Fact]
    public void AModelWithoutABoundOrAContextRefusesNothingHere()
    {
        var text = new { prompt = new string('a', 100_000) };
        Assert.Null(Record.Exception(() => Completion(text, Model with { MaxInputBytesPerToken = 0 })));
        Assert.Null(Record.Exception(() => Completion(text, Model with { ContextLength = 0 })));
    }

    [Fact]
    public void TheSizesReadFromTheRawValueMatchTheStringsOwn()
    {
        // Escaped (the default encoder writes \uXXXX for non-ASCII and HTML characters) and raw UTF-8 alike.
        var escaping = new[] { new JsonSerializerOptions(), new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping } };
        var sanitizer = new InputSanitizer(1, 1);
        Gen.OneOf<string>("a", "\"", "\\", "/", "é", "字", "😀", " ", "\u3000", "\t", "\n", "\r", "\r\n", "\b", "\f", "\0", "\u0001", "\u0085", "<", "&", "\u2028")
            .Array[0, 100].Select(string.Concat)
            .Sample(text =>
            {
                foreach (var options in escaping)
                {
                    using var document = JsonDocument.Parse(JsonSerializer.Serialize(text, options));
                    var size = JsonStringSize.Of(document.RootElement);
                    Assert.Equal(text.Length, size.Utf16Length);
                    Assert.Equal(Encoding.UTF8.GetByteCount(sanitizer.Sanitize(text)), size.MinSanitizedUtf8Bytes);
                    Assert.True(JsonStringSize.RawLength(document.RootElement) >= Math.Max(size.Utf16Length, size.MinSanitizedUtf8Bytes));
                }
            }, iter: 3000);
    }

    [Theory]
    [InlineData(50, false)]
    [InlineData(51, true)]
    public void AFieldOverItsCharacterLimitIsRefusedFromItsRawText(int length, bool refused)
    {
        // The limit counts UTF-16 characters; the raw text is longer (escapes, multi-byte UTF-8), so it is counted, not guessed.
        var limits = new ApiLimits { MaxPromptCharacters = 50 };
        var text = string.Concat(Enumerable.Repeat("é\n😀", length / 4 + 1))[..length];
        if (char.IsHighSurrogate(text[^1])) text = text[..^1] + "x";
        var error = Record.Exception(() => Completion(new { prompt = text }, Model with { MaxInputBytesPerToken = 0 }, limits));
        if (!refused)
        {
            Assert.Null(error);
            return;
        }
        var api = Assert.IsType<ApiException>(error);
        Assert.Equal(("prompt", "string_above_max_length"), (api.Param, api.Code));
        Assert.Contains($"prompt must be at most 50 characters; got {length}.", api.Message);
    }

    [Fact]
    public void ARefusalAllocatesFarLessThanThePrompt()
    {
        // 400,000 characters: 800 KB as a string, which the old path made before the prompt stage counted it.
        using var document = JsonDocument.Parse(JsonSerializer.Serialize(new { prompt = new string('a', 400_000), max_tokens = 8 }));
        var limits = new ApiLimits();
        Assert.Throws<ApiException>(() => TextCompletionParser.Parse(document.RootElement, Model, limits)); // statics and JIT, not the input's doing

        var before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Throws<ApiException>(() => TextCompletionParser.Parse(document.RootElement, Model, limits));
        var refusal = GC.GetAllocatedBytesForCurrentThread() - before;

        before = GC.GetAllocatedBytesForCurrentThread();
        var text = document.RootElement.GetProperty("prompt").GetString();
        var prompt = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(400_000, text!.Length);
        Assert.True(refusal * 100 < prompt, $"the refusal allocated {refusal} bytes; the prompt's string alone {prompt}");
    }

    [Fact]
    public async Task OverHttpTheBoundRefusesNamingTheFieldAndTheExactCountStillRefusesWhatItMisses()
    {
        var backend = AlphabetModel.Backend();
        Assert.Equal((1024, 13), (backend.Model.ContextLength, backend.Model.MaxInputBytesPerToken));
        await using var server = await RunningServer.StartAsync(backend); // 13: "<|assistant|>"

        // At the bound: 13 × 1023 + 1 bytes are at least 1024 tokens.
        var error = await RefusedAsync(new string('a', 13 * 1023 + 1));
        Assert.Contains("prompt has at least 1024 tokens", error.GetProperty("message").GetString());

        // Under the bound but over the context by the exact count (a byte token per letter): the prompt stage refuses it.
        error = await RefusedAsync(new string('a', 1100));
        Assert.Matches("the prompt has 110[0-2] tokens, which leaves no room", error.GetProperty("message").GetString());

        async Task<JsonElement> RefusedAsync(string prompt)
        {
            var (status, body, _) = await RawHttp.PostJsonAsync(server.Http, "v1/completions", JsonSerializer.Serialize(new { model = "alphabet", prompt, max_tokens = 1 }));
            Assert.Equal(400, status);
            var e = RawHttp.Error(body);
            Assert.Equal(("prompt", "context_length_exceeded"), (e.GetProperty("param").GetString(), e.GetProperty("code").GetString()));
            return e;
        }
    }

    [Fact]
    public void ThePromptStageCountsAByteLevelPromptUpToTheContextWithoutEncodingIt()
    {
        // A byte-level vocabulary on the alphabet model's engine (context 1024): two pieces a word (" w", "123").
        var backend = AlphabetModel.Backend(tokenizer: TokenizerFactory.Create(SyntheticVocabulary.Create(AlphabetModel.Vocab)));
        var words = string.Join(' ', Enumerable.Range(0, 3000).Select(i => "w" + i));
        var request = new GenerationRequest { Model = "alphabet", Prompt = PromptInput.FromText(words) };
        Assert.Throws<ApiException>(() => backend.Prepare(request)); // warm-up

        var before = GC.GetAllocatedBytesForCurrentThread();
        var error = Assert.Throws<ApiException>(() => backend.Prepare(request));
        var refusal = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(("prompt", "context_length_exceeded"), (error.Param, error.Code));
        Assert.Contains("the prompt has at least 1024 tokens", error.Message);
        var encoding = GC.GetAllocatedBytesForCurrentThread();
        var tokens = backend.Tokenizer.Encode(words).Length;
        encoding = GC.GetAllocatedBytesForCurrentThread() - encoding;
        Assert.True(tokens > 1024);
        Assert.True(refusal * 20 < encoding, $"the refusal allocated {refusal} bytes, encoding the prompt {encoding}");

        // Below: 1,000 pieces are counted, so the prompt is encoded and the spine's exact count judges it.
        var under = string.Join(' ', Enumerable.Range(0, 500).Select(i => "w" + i));
        Assert.Equal(backend.Tokenizer.Encode(under).Length, backend.Prepare(request with { Prompt = PromptInput.FromText(under) }).TokenCount);
        // One long word is one piece: the count says little, the exact count is what refuses it.
        var word = new string('w', 5000);
        Assert.True(backend.Prepare(request with { Prompt = PromptInput.FromText(word) }).TokenCount > 1024);
    }
}
