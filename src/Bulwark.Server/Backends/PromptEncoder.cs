using System.Buffers;
using System.Text.Json;
using Bulwark.Engine.Templates;
using Bulwark.Engine.Templates.Jinja;
using Bulwark.Engine.Tokenizers;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Backends;

/// <summary>
/// A model's prompt side: its tokenizer and chat template, turning a request's messages or prompt
/// into token ids exactly as the model will see them. The embedded engine runs what it encodes; for a
/// model an upstream runs, an operator may configure the model's tokenizer so the token quota and the
/// context check count exactly instead of estimating.
/// </summary>
public sealed class PromptEncoder : ITokenizingBackend
{
    private readonly ITokenizer _tokenizer;
    private readonly ChatTemplate? _template;
    private readonly string _modelId;
    private readonly IReadOnlyDictionary<string, object?> _templateVariables;
    private readonly SearchValues<string>? _controlTexts;

    /// <param name="template">Null when the model ships none: chat requests are then refused with a clear error.</param>
    public PromptEncoder(ITokenizer tokenizer, ChatTemplate? template, string modelId)
    {
        _tokenizer = tokenizer;
        _template = template;
        _modelId = modelId;
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

    public ITokenizer Tokenizer => _tokenizer;

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
    /// the template's own markers, letting a user forge turns (e.g. a fake system message). The same
    /// holds for every string of <paramref name="tools"/> and of the messages' tool calls.
    /// </summary>
    /// <param name="tools">OpenAI's <c>tools</c> array as the template's <c>tools</c>; null: none.</param>
    public int[] EncodeChat(IReadOnlyList<ChatMessage> messages, JsonElement? tools = null)
    {
        if (_template is null)
            throw ApiException.Invalid("messages", $"The model '{_modelId}' has no chat template; use /v1/completions with a prompt.", "chat_template_missing");
        for (var i = 0; i < messages.Count; i++)
        {
            RefuseControlText(messages[i].Content, $"messages[{i}].content");
            if (messages[i].ToolCallId is { } callId) RefuseControlText(callId, $"messages[{i}].tool_call_id");
            var j = 0;
            foreach (var call in messages[i].ToolCalls ?? [])
            {
                RefuseControlText(call.Id, $"messages[{i}].tool_calls[{j}].id");
                RefuseControlText(call.Name, $"messages[{i}].tool_calls[{j}].function.name");
                RefuseControlText(call.Arguments, $"messages[{i}].tool_calls[{j}].function.arguments");
                j++;
            }
        }
        if (tools is { } t) RefuseControlText(t, "tools");
        string rendered;
        try
        {
            rendered = _template.RenderChat(ToJson(messages), tools, addGenerationPrompt: true, _templateVariables);
        }
        catch (TemplateException e)
        {
            throw ApiException.Invalid("messages", $"The model's chat template refused these messages: {e.Message}", "chat_template_error");
        }
        return _tokenizer.Encode(rendered, addSpecial: false, parseSpecial: true);
    }

    private void RefuseControlText(string text, string path)
    {
        if (_controlTexts is not null && text.AsSpan().IndexOfAny(_controlTexts) is var at and >= 0)
            throw ApiException.Invalid(path, $"{path} contains the model's control token text at character {at}; control tokens may only come from the chat template.",
                "control_token_in_content");
    }

    /// <summary>Every property name and string in <paramref name="value"/>, as the template's <c>tojson</c> would write them unescaped.</summary>
    private void RefuseControlText(JsonElement value, string path)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                RefuseControlText(value.GetString()!, path);
                break;
            case JsonValueKind.Array:
                var i = 0;
                foreach (var item in value.EnumerateArray()) RefuseControlText(item, $"{path}[{i++}]");
                break;
            case JsonValueKind.Object:
                foreach (var p in value.EnumerateObject())
                {
                    RefuseControlText(p.Name, $"{path}.{p.Name}");
                    RefuseControlText(p.Value, $"{path}.{p.Name}");
                }
                break;
        }
    }

    /// <summary>The request's prompt as token ids: the rendered chat, the tokenized text, or the ids the client sent.</summary>
    /// <param name="contextLength">The model's context (0: unknown): a text prompt that provably fills it is refused before it is encoded.</param>
    public PreparedPrompt Prepare(GenerationRequest request, int contextLength = 0)
    {
        if (request.Messages is { } messages) return PreparedPrompt.Exact(EncodeChat(messages, request.Tools?.Rendered));
        var prompt = request.Prompt ?? throw new ArgumentException("a request has messages or a prompt", nameof(request));
        if (prompt.TokenIds is { } ids) return PreparedPrompt.Exact(ids);
        RefuseOverContext(prompt.Text!, contextLength);
        var tokens = Encode(prompt.Text!, addSpecialTokens: true);
        if (tokens.Length == 0) throw ApiException.Invalid("prompt", "prompt must not be empty.");
        return PreparedPrompt.Exact(tokens);
    }

    /// <summary>
    /// A text prompt whose tokens, counted without encoding (<see cref="ITokenizer.CountTokensAtLeast"/>, which stops at the
    /// context), fill the context: refused as the spine would refuse its exact count, without the token ids of a prompt
    /// that may be many times the context. A text with fewer UTF-8 bytes than the context less three is not counted: no
    /// token stands for less than a byte but BOS, EOS and SentencePiece's space prefix.
    /// </summary>
    private void RefuseOverContext(string text, int contextLength)
    {
        if (contextLength <= 0 || text.Length * 3L + 3 < contextLength) return;
        var least = _tokenizer.CountTokensAtLeast(text, contextLength);
        if (least < contextLength) return;
        throw ApiException.Invalid("prompt",
            $"This model's maximum context length is {contextLength} tokens; the prompt has at least {least} tokens (counted up to the context, without encoding it), which leaves no room for output. Reduce the prompt.",
            "context_length_exceeded");
    }

    /// <summary>The messages as the template's <c>messages</c>: tool-call arguments as objects, as templates expect them.</summary>
    internal static JsonElement ToJson(IReadOnlyList<ChatMessage> messages)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer)) ChatMessage.WriteArray(json, messages, argumentsAsObjects: true);
        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();
    }
}
