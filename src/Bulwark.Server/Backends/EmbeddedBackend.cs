using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Templates;
using Bulwark.Engine.Tokenizers;
using Bulwark.Server.Api;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using EngineFinish = Bulwark.Engine.Serving.FinishReason;
using EngineRequest = Bulwark.Engine.Serving.GenerationRequest;
using EngineSampling = Bulwark.Engine.Serving.Sampling.SamplingParams;

namespace Bulwark.Server.Backends;

/// <summary>
/// The in-process backend: <see cref="LlmEngine"/> (continuous batching over a paged KV cache)
/// with the model's tokenizer and chat template. Text is decoded here, on the request's own
/// thread, so the engine's step loop only computes and samples. Disposing the backend stops the engine.
/// </summary>
public sealed class EmbeddedBackend : IGenerationBackend, IDisposable
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

    public BackendStatistics Statistics
    {
        get
        {
            var c = _engine.Counters;
            return new BackendStatistics((int)c.Running, (int)c.Waiting, c.KvBlocksTotal == 0 ? 0 : (double)c.KvBlocksUsed / c.KvBlocksTotal,
                c.PrefixCacheQueryTokens, c.PrefixCacheHitTokens, c.Preemptions);
        }
    }

    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var engineRequest = ToEngine(request);
        try
        {
            _engine.Validate(engineRequest);
        }
        catch (ArgumentException e)
        {
            // The API checked context and ranges already; what is left is the KV budget of this server.
            throw ApiException.Invalid("max_tokens", e.Message.Split(" (Parameter")[0], "request_too_large");
        }
        var decoder = _tokenizer.CreateIncrementalDecoder();
        await foreach (var e in _engine.GenerateAsync(engineRequest, cancellationToken).ConfigureAwait(false))
        {
            var top = e.TopLogprobs is { } alternatives ? Array.ConvertAll(alternatives, a => new TokenLogprob(a.TokenId, TokenText(a.TokenId), a.Logprob)) : null;
            switch (e.FinishReason)
            {
                case null:
                    yield return new GeneratedToken(e.TokenId, decoder.Push(e.TokenId), FinishReason.None, e.Logprob ?? 0f, top);
                    break;
                case EngineFinish.Length:
                    yield return new GeneratedToken(e.TokenId, decoder.Push(e.TokenId) + decoder.Flush(), FinishReason.Length, e.Logprob ?? 0f, top);
                    yield break;
                default:
                    // The engine is given no stop strings (the API applies them on text), so Stop means an
                    // end-of-sequence or stop token: its text is never shown.
                    yield return new GeneratedToken(-1, decoder.Flush(), FinishReason.Stop);
                    yield break;
            }
        }
    }

    public void Dispose()
    {
        _engine.Dispose();
        foreach (var owned in _owns) owned.Dispose();
    }

    private EngineRequest ToEngine(GenerationRequest request)
    {
        var s = request.Sampling;
        return new EngineRequest
        {
            PromptTokens = request.PromptTokenIds,
            Sampling = new EngineSampling
            {
                Temperature = s.Temperature,
                TopP = s.TopP,
                TopK = s.TopK,
                MinP = s.MinP,
                RepetitionPenalty = s.RepetitionPenalty,
                FrequencyPenalty = s.FrequencyPenalty,
                PresencePenalty = s.PresencePenalty,
                LogitBias = s.LogitBias.Count > 0 ? s.LogitBias : null,
                Seed = s.Seed is { } seed ? unchecked((long)seed) : null,
                MaxTokens = request.MaxTokens,
                StopTokenIds = request.StopTokenIds.Count > 0 ? request.StopTokenIds : null,
                Logprobs = request.TopLogprobs is not null,
                TopLogprobs = request.TopLogprobs ?? 0,
            },
            Tenant = request.Tenant ?? "",
            // The API's priority runs higher first; the engine's runs smaller first.
            Priority = -request.Priority,
        };
    }

    private string TokenText(int id) => _tokenizer.Decode([id]);

    private static JsonElement ToJson(IReadOnlyList<ChatMessage> messages)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartArray();
            foreach (var m in messages)
            {
                json.WriteStartObject();
                json.WriteString("role", m.Role);
                json.WriteString("content", m.Content);
                if (m.Name is not null) json.WriteString("name", m.Name);
                json.WriteEndObject();
            }
            json.WriteEndArray();
        }
        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();
    }
}
