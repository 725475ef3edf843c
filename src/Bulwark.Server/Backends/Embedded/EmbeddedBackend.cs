using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Constraints;
using Bulwark.Engine.Templates.Jinja;
using Bulwark.Engine.Templates;
using Bulwark.Engine.Tokenizers;
using Bulwark.Engine.Tools;
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
    private readonly PromptEncoder _prompts;
    private readonly IReadOnlyList<IDisposable> _owns;
    private readonly Lazy<TokenVocabulary> _vocabulary;
    // The tool-call markers the vocabulary has as control tokens, and the vocabulary tool_choice grammars use, which allows them.
    private readonly Lazy<int[]> _markers;
    private readonly Lazy<TokenVocabulary> _toolVocabulary;
    // One per grammar (the contract stage shares grammars between requests that repeat a constraint), so their masks are shared;
    // a TokenConstraint is only ever used on the engine's step thread.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<Grammar, TokenConstraint> _constraints = new();

    /// <param name="template">Null when the model ships none: chat requests are then refused with a clear error.</param>
    /// <param name="owns">Disposed after the engine stops, in order (the executor's KV blocks, then the mapped weights).</param>
    /// <param name="toolFormat">How the model writes tool calls; null: detected from <paramref name="template"/>.</param>
    public EmbeddedBackend(LlmEngine engine, ITokenizer tokenizer, ChatTemplate? template, string modelId, DateTimeOffset created,
        string? notice = null, IReadOnlyList<IDisposable>? owns = null, Bulwark.Engine.Tools.ToolCallFormat? toolFormat = null)
    {
        _owns = owns ?? [];
        if (tokenizer.VocabSize > engine.VocabSize)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} tokens but the model's vocabulary holds {engine.VocabSize}", nameof(tokenizer));
        _engine = engine;
        _tokenizer = tokenizer;
        _prompts = new PromptEncoder(tokenizer, template, modelId);
        // Built on the first constrained request: a trie over the vocabulary's byte strings, shared by all of them.
        _vocabulary = new Lazy<TokenVocabulary>(() => TokenVocabulary.From(tokenizer, engine.VocabSize));
        _markers = new Lazy<int[]>(() => ToolCallFormats.MarkerTokens(tokenizer));
        _toolVocabulary = new Lazy<TokenVocabulary>(() => _markers.Value.Length == 0 ? _vocabulary.Value : TokenVocabulary.From(tokenizer, engine.VocabSize, _markers.Value));
        Model = new ModelCard(modelId, engine.MaxContextLength, tokenizer.VocabSize, created, Notice: notice)
        {
            ToolFormat = toolFormat ?? Bulwark.Engine.Tools.ToolCallFormats.Detect(template?.Source),
        };
    }

    public ModelCard Model { get; }

    /// <summary>The engine, for its counters (tests and benchmarks).</summary>
    public LlmEngine Engine => _engine;

    public int[] Encode(string text, bool addSpecialTokens) => _prompts.Encode(text, addSpecialTokens);

    public string Decode(ReadOnlySpan<int> tokenIds) => _prompts.Decode(tokenIds);

    public int[] EncodeChat(IReadOnlyList<ChatMessage> messages) => _prompts.EncodeChat(messages);

    public PreparedPrompt Prepare(GenerationRequest request)
    {
        if (request.Choices > _engine.MaxSequences)
            throw ApiException.Invalid("n", $"n must be at most {_engine.MaxSequences} on this server (the engine's --max-seqs); got {request.Choices}.");
        return _prompts.Prepare(request);
    }

    public BackendStatistics Statistics
    {
        get
        {
            var c = _engine.Counters;
            return new BackendStatistics((int)c.Running, (int)c.Waiting, c.KvBlocksTotal == 0 ? 0 : (double)c.KvBlocksUsed / c.KvBlocksTotal,
                c.PrefixCacheQueryTokens, c.PrefixCacheHitTokens, c.Preemptions, c.KvBlocksScrubbed);
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
            Detokenizer = request.Tools is { Parse: not ToolCallFormat.None } && _markers.Value.Length > 0
                ? () => new MarkerDetokenizer(_tokenizer, _markers.Value)
                : () => new Detokenizer(_tokenizer.CreateIncrementalDecoder()),
            Choices = call.Choices,
            Constraint = request.Constraint is { } constraint ? Constrain(constraint) : null,
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

    /// <summary>The request's grammar over this model's vocabulary; a model without an end-of-sequence token cannot say a value is complete.</summary>
    private TokenConstraint Constrain(OutputConstraint constraint)
    {
        if (_engine.EosTokenIds.Count == 0)
            throw ApiException.Unsupported(constraint.Field, $"{constraint.Field} needs the model's end-of-sequence token to end a complete value, and this model defines none.");
        // A tool call's grammar may be written with the model's marker tokens (its vocabulary allows them); any other never.
        var vocabulary = constraint.Field == "tool_choice" ? _toolVocabulary.Value : _vocabulary.Value;
        var shared = _constraints.GetValue(constraint.Grammar, g => new TokenConstraint(g, vocabulary));
        if (!shared.IsWorn) return shared;
        // Its memo grew large (a grammar with many distinct states): new requests start afresh, and the old one goes when its sequences end.
        var fresh = new TokenConstraint(constraint.Grammar, vocabulary);
        _constraints.AddOrUpdate(constraint.Grammar, fresh);
        return fresh;
    }

    public void Dispose()
    {
        _engine.Dispose();
        foreach (var owned in _owns) owned.Dispose();
    }

    private GeneratedToken Token(in TokenEvent e) => new(e.TokenId, e.TokenText ?? "", e.Logprob ?? 0f,
        e.TopLogprobs is { } alternatives ? Array.ConvertAll(alternatives, a => a with { Text = _tokenizer.Decode([a.TokenId]) }) : null);

    /// <summary>
    /// For a request whose tool calls are read: the tokenizer's decoder, except that a control token spelling a tool-call
    /// marker is written as its text (decoding drops control tokens), so the parser sees the marker the model wrote.
    /// </summary>
    internal sealed class MarkerDetokenizer(ITokenizer tokenizer, int[] markers) : IIncrementalDetokenizer
    {
        private readonly IncrementalDecoder _decoder = tokenizer.CreateIncrementalDecoder();

        public string Push(int tokenId) => Array.IndexOf(markers, tokenId) >= 0 ? _decoder.Flush() + tokenizer.TokenText(tokenId) : _decoder.Push(tokenId);

        public string Flush() => _decoder.Flush();
    }

    /// <summary>The tokenizer's incremental decoder as the engine asks for one (one per choice).</summary>
    private sealed class Detokenizer(IncrementalDecoder decoder) : IIncrementalDetokenizer
    {
        public string Push(int tokenId) => decoder.Push(tokenId);

        public string Flush() => decoder.Flush();
    }
}
