using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Templates;
using Bulwark.Engine.Tokenizers;

namespace Bulwark.Engine.Serving;

/// <summary>
/// A model ready to serve: the running engine with its tokenizer, chat template and stop ids.
/// Made by <see cref="EngineFactory.Load"/>. Disposing drains the engine (requests in flight end
/// with <see cref="EngineStoppedException"/>), then frees the KV cache and unmaps the weights.
/// </summary>
public sealed class LoadedEngine : IDisposable
{
    private readonly LlamaModel _model;
    private readonly PagedLlamaExecutor _executor;
    private readonly Templates.ChatTemplateSource? _templateSource;
    private int _disposed;

    internal LoadedEngine(string modelId, string path, LlamaModel model, PagedLlamaExecutor executor, LlmEngine engine,
        ITokenizer tokenizer, Templates.ChatTemplateSource? chatTemplateSource, ChatTemplate? chatTemplate, string? chatTemplateError, IReadOnlyList<int> eosTokenIds)
    {
        ModelId = modelId;
        Path = path;
        _model = model;
        _executor = executor;
        Engine = engine;
        Tokenizer = tokenizer;
        _templateSource = chatTemplateSource;
        ChatTemplate = chatTemplate;
        ChatTemplateError = chatTemplateError;
        EosTokenIds = eosTokenIds;
    }

    /// <summary>The file's name without extension (or the folder's name).</summary>
    public string ModelId { get; }

    public string Path { get; }

    public LlamaConfig Config => _model.Config;

    public LlmEngine Engine { get; }

    public ITokenizer Tokenizer { get; }

    /// <summary>The template text the model ships with; null when it has none.</summary>
    public string? ChatTemplateSource => _templateSource?.Source;

    /// <summary>The parsed template; null when the model has none or it failed to parse (see <see cref="ChatTemplateError"/>).</summary>
    public ChatTemplate? ChatTemplate { get; }

    /// <summary>Why the shipped template cannot be used, safe to show a client; null when it parsed or is absent.</summary>
    public string? ChatTemplateError { get; }

    /// <summary>Ids that end a choice: the tokenizer's EOS and end-of-turn ids (or what the options named).</summary>
    public IReadOnlyList<int> EosTokenIds { get; }

    /// <summary>Longest prompt + output the engine accepts.</summary>
    public int ContextLength => Engine.MaxContextLength;

    /// <summary>
    /// The special-token variables chat templates read (<c>bos_token</c>, <c>eos_token</c>, ...): as the
    /// model's template source names them, else the tokenizer's BOS/EOS texts.
    /// </summary>
    public IReadOnlyDictionary<string, object?> TemplateVariables()
    {
        var special = Tokenizer.Special;
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["bos_token"] = special.Bos >= 0 ? Tokenizer.TokenText(special.Bos) : "",
            ["eos_token"] = special.Eos >= 0 ? Tokenizer.TokenText(special.Eos) : "",
        };
        foreach (var (name, text) in _templateSource?.SpecialTokens ?? new Dictionary<string, string>())
            variables[name] = text;
        return variables;
    }

    /// <summary>The draft model loaded beside this one for draft-model speculation; null when none.</summary>
    public DraftModel? Draft { get; init; }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        Engine.Dispose();
        Draft?.Dispose();
        _executor.Dispose();
        _model.Dispose();
    }
}

/// <summary>A draft model for speculation: its weights and the executor over its own KV cache.</summary>
public sealed class DraftModel(string path, LlamaModel model, PagedLlamaExecutor executor) : IDisposable
{
    public string Path { get; } = path;

    public LlamaConfig Config => model.Config;

    internal PagedLlamaExecutor Executor { get; } = executor;

    public void Dispose()
    {
        Executor.Dispose();
        model.Dispose();
    }
}
