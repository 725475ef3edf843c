using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Templates.Jinja;
using Bulwark.Engine.Templates;
using Bulwark.Engine.Tokenizers;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Backends.Embedded;

/// <summary>
/// The in-process backend: <see cref="LlmEngine"/> (continuous batching over a paged KV cache)
/// with the model's tokenizer and chat template. A request's n choices are one engine request, so
/// the prompt is prefilled once and the choices fork from it; the engine also turns tokens into text
/// and applies stop strings, on its step thread. Disposing the backend stops the engine.
/// </summary>
public sealed class EmbeddedBackend : IGenerationBackend, ITokenizingBackend, IDisposable
{
    private readonly LlmEngine _engine;
    private readonly ITokenizer _tokenizer;
    private readonly ChatTemplate? _template;
    private readonly IReadOnlyDictionary<string, object?> _templateVariables;
    private readonly SearchValues<string>? _controlTexts;
    private readonly IReadOnlyList<IDisposable> _owns;

    /// <param name="template">Null when the model ships none: chat requests are then refused with a clear error.</param>
    /// <param name="owns">Disposed after the engine stops, in order (the executor's KV blocks, then the mapped weights).</param>
    public EmbeddedBackend(LlmEngine engine, ITokenizer tokenizer, ChatTemplate? template, string modelId, DateTimeOffset created,
        string? notice = null, IReadOnlyList<IDisposable>? owns = null)
    {
        _owns = owns ?? [];
        if (tokenizer.VocabSize > engine.VocabSize)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} tokens but the model's vocabulary holds {engine.VocabSize}", nameof(tokenizer));
        _engine = engine;
        _tokenizer = tokenizer;
        _template = template;
        Model = new ModelCard(modelId, engine.MaxContextLength, tokenizer.VocabSize, created, Notice: notice);
        var special = tokenizer.Special;
        _templateVariables = new Dictionary<string, object?>
        {
            ["bos_token"] = special.Bos >= 0 ? tokenizer.TokenText(special.Bos) : "",
            ["eos_token"] = special.Eos >= 0 ? tokenizer.TokenText(special.Eos) : "",
        };
        var controls = Enumerable.Range(0, tokenizer.VocabSize)
            .Where(id => tokenizer.TypeOf(id) == TokenType.Control && tokenizer.TokenText(id).Length >= 2)
            .Select(tokenizer.TokenText).Distinct(StringComparer.Ordinal).ToArray();
        _controlTexts = controls.Length > 0 ? SearchValues.Create(controls, StringComparison.Ordinal) : null;
    }

    public ModelCard Model { get; }

    /// <summary>The engine, for its counters (tests and benchmarks).</summary>
    public LlmEngine Engine => _engine;

    public int[] Encode(string text, bool addSpecialTokens) => _tokenizer.Encode(text, addSpecialTokens, parseSpecial: false);

    public string Decode(ReadOnlySpan<int> tokenIds)
    {
        foreach (var id in tokenIds)
            if ((uint)id >= (uint)_tokenizer.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(tokenIds), $"token id must be between 0 and {_tokenizer.VocabSize - 1}; got {id}");
        return _tokenizer.Decode(tokenIds);
    }

    /// <summary>
    /// Renders the chat template and tokenizes the result with its control tokens. A message that
    /// spells a control token itself is refused: after rendering it would be indistinguishable from
    /// the template's own markers, letting a user forge turns (e.g. a fake system message).
    /// </summary>
    public int[] EncodeChat(IReadOnlyList<ChatMessage> messages)
    {
        if (_template is null)
            throw ApiException.Invalid("messages", $"The model '{Model.Id}' has no chat template; use /v1/completions with a prompt.", "chat_template_missing");
        for (var i = 0; i < messages.Count; i++)
            if (_controlTexts is not null && messages[i].Content.AsSpan().IndexOfAny(_controlTexts) is var at and >= 0)
                throw ApiException.Invalid($"messages[{i}].content",
                    $"messages[{i}].content contains the model's control token text at character {at}; control tokens may only come from the chat template.",
                    "control_token_in_content");
        string rendered;
        try
        {
            rendered = _template.RenderChat(ToJson(messages), null, addGenerationPrompt: true, _templateVariables);
        }
        catch (TemplateException e)
        {
            throw ApiException.Invalid("messages", $"The model's chat template refused these messages: {e.Message}", "chat_template_error");
        }
        return _tokenizer.Encode(rendered, addSpecial: false, parseSpecial: true);
    }

    public PreparedPrompt Prepare(GenerationRequest request)
    {
        if (request.Choices > _engine.MaxSequences)
            throw ApiException.Invalid("n", $"n must be at most {_engine.MaxSequences} on this server (the engine's --max-seqs); got {request.Choices}.");
        if (request.Messages is { } messages) return PreparedPrompt.Exact(EncodeChat(messages));
        var prompt = request.Prompt ?? throw new ArgumentException("a request has messages or a prompt", nameof(request));
        if (prompt.TokenIds is { } ids) return PreparedPrompt.Exact(ids);
        var tokens = Encode(prompt.Text!, addSpecialTokens: true);
        if (tokens.Length == 0) throw ApiException.Invalid("prompt", "prompt must not be empty.");
        return PreparedPrompt.Exact(tokens);
    }

    public BackendStatistics Statistics
    {
        get
        {
            var c = _engine.Counters;
            return new BackendStatistics((int)c.Running, (int)c.Waiting, c.KvBlocksTotal == 0 ? 0 : (double)c.KvBlocksUsed / c.KvBlocksTotal,
                c.PrefixCacheQueryTokens, c.PrefixCacheHitTokens, c.Preemptions);
        }
    }

    public async IAsyncEnumerable<ChoiceDelta> GenerateAsync(BackendCall call, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var request = call.Request;
        var engineRequest = new EngineRequest
        {
            PromptTokens = call.Prompt.TokenIds ?? throw new ArgumentException("the embedded backend runs prompts it prepared itself", nameof(call)),
            Sampling = request.Sampling,
            Tenant = request.Tenant ?? "",
            // The API's priority runs higher first; the engine's runs smaller first.
            Priority = -request.Priority,
            Detokenizer = () => new Detokenizer(_tokenizer.CreateIncrementalDecoder()),
            Choices = call.Choices,
        };
        try
        {
            _engine.Validate(engineRequest);
        }
        catch (ArgumentException e)
        {
            // The API checked context and ranges already; what is left is the KV budget of this server.
            throw ApiException.Invalid("max_tokens", e.Message.Split(" (Parameter")[0], "request_too_large");
        }
        var logprobs = request.Sampling.Logprobs;
        await foreach (var e in _engine.GenerateAsync(engineRequest, cancellationToken).ConfigureAwait(false))
        {
            // A stop or end-of-sequence token ends the choice; its text is never shown and it is not output.
            GeneratedToken[]? tokens = logprobs && !e.IsStopToken ? [Token(e)] : null;
            yield return new ChoiceDelta(e.Index, e.Text ?? "", e.FinishReason, tokens, e.IsStopToken ? 0 : 1) { StopStringMatched = e.StopStringMatched };
        }
    }

    public void Dispose()
    {
        _engine.Dispose();
        foreach (var owned in _owns) owned.Dispose();
    }

    private GeneratedToken Token(in TokenEvent e) => new(e.TokenId, e.TokenText ?? "", e.Logprob ?? 0f,
        e.TopLogprobs is { } alternatives ? Array.ConvertAll(alternatives, a => a with { Text = _tokenizer.Decode([a.TokenId]) }) : null);

    private static JsonElement ToJson(IReadOnlyList<ChatMessage> messages)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer)) ChatMessage.WriteArray(json, messages);
        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();
    }

    /// <summary>The tokenizer's incremental decoder as the engine asks for one (one per choice).</summary>
    private sealed class Detokenizer(IncrementalDecoder decoder) : IIncrementalDetokenizer
    {
        public string Push(int tokenId) => decoder.Push(tokenId);

        public string Flush() => decoder.Flush();
    }
}
