using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Constraints;
using Bulwark.Engine.Serving.Embeddings;
using Bulwark.Engine.Model.Config;
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
public sealed class EmbeddedBackend : IGenerationBackend, ITokenizingBackend, IEmbeddingBackend, IDisposable
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
    /// <param name="pooling">How <c>/v1/embeddings</c> pools this model's states; <see cref="PoolingType.None"/>: it embeds nothing.</param>
    /// <param name="matryoshkaMinDimensions">0: vectors keep the model's width; N: they may be cut to N..width values.</param>
    /// <param name="toolFormat">How the model writes tool calls; null: detected from <paramref name="template"/>.</param>
    public EmbeddedBackend(LlmEngine engine, ITokenizer tokenizer, ChatTemplate? template, string modelId, DateTimeOffset created,
        string? notice = null, IReadOnlyList<IDisposable>? owns = null, PoolingType pooling = PoolingType.None, int matryoshkaMinDimensions = 0,
        Bulwark.Engine.Tools.ToolCallFormat? toolFormat = null)
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
            MaxInputBytesPerToken = tokenizer.MaxInputBytesPerToken,
        };
        _pooling = pooling;
        var width = engine.EmbeddingLength;
        Embeddings = pooling == PoolingType.None || width == 0
            ? EmbeddingSupport.None($"The model '{modelId}' is not an embedding model: its file declares no pooling (GGUF pooling_type, sentence-transformers 1_Pooling) and the server sets none (Bulwark:Serve:EmbeddingPooling).")
            : new EmbeddingSupport(width, matryoshkaMinDimensions > 0 ? Math.Min(matryoshkaMinDimensions, width) : width);
    }

    private readonly PoolingType _pooling;

    public EmbeddingSupport Embeddings { get; }

    public PreparedEmbeddings PrepareEmbeddings(EmbeddingsRequest request)
    {
        var inputs = new int[request.Inputs.Count][];
        var total = 0;
        for (var i = 0; i < inputs.Length; i++)
        {
            var input = request.Inputs[i];
            // Text gets the model's special tokens (BOS, and the EOS a last-token model such as Qwen3-Embedding pools on), as llama.cpp adds them.
            var tokens = input.TokenIds ?? _prompts.Encode(input.Text!, addSpecialTokens: true);
            var path = request.Inputs.Count == 1 && input.Text is not null ? "input" : $"input[{i}]";
            if (tokens.Length == 0) throw ApiException.Invalid(path, $"{path} has no tokens once tokenized.", "string_below_min_length");
            if (tokens.Length > Model.ContextLength) throw EmbeddingsRequest.ContextExceeded(path, Model.ContextLength, tokens.Length);
            inputs[i] = tokens;
            total += tokens.Length;
        }
        return new PreparedEmbeddings(inputs, total);
    }

    public async Task<EmbeddingResult> EmbedAsync(EmbeddingsRequest request, PreparedEmbeddings prepared, CancellationToken cancellationToken)
    {
        // Every input enters the engine's queue at once; the scheduler batches them with each other and with generations.
        var requests = prepared.TokenIds.Select(tokens => new EmbeddingRequest
        {
            Tokens = tokens,
            Pooling = _pooling,
            Tenant = request.Tenant ?? "",
            // The API's priority runs higher first; the engine's runs smaller first.
            Priority = -request.Priority,
        }).ToArray();
        try
        {
            foreach (var r in requests) _engine.Validate(r);
        }
        catch (ArgumentException e)
        {
            // The API checked context and vocabulary already; what is left is the KV budget of this server.
            throw ApiException.Invalid("input", e.Message.Split(" (Parameter")[0], "request_too_large");
        }
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var tasks = Array.ConvertAll(requests, r => EmbedOneAsync(r, cancel));
        try
        {
            return new EmbeddingResult(await Task.WhenAll(tasks).ConfigureAwait(false));
        }
        catch when (!cancellationToken.IsCancellationRequested)
        {
            // The input that failed, not the ones its failure cancelled.
            var failure = tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!).FirstOrDefault(e => e is not OperationCanceledException);
            if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
            throw;
        }
    }

    /// <summary>One input's vector; its failure cancels the request's other inputs rather than computing vectors nobody will read.</summary>
    private async Task<float[]> EmbedOneAsync(EmbeddingRequest request, CancellationTokenSource all)
    {
        try
        {
            return await _engine.EmbedAsync(request, all.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await all.CancelAsync().ConfigureAwait(false);
            throw;
        }
    }

    public ModelCard Model { get; }

    /// <summary>The engine, for its counters (tests and benchmarks).</summary>
    public LlmEngine Engine => _engine;

    /// <summary>The model's tokenizer, for prompts the server builds itself (a guard model's, whose own markers are control tokens).</summary>
    public ITokenizer Tokenizer => _tokenizer;

    public int[] Encode(string text, bool addSpecialTokens) => _prompts.Encode(text, addSpecialTokens);

    public string Decode(ReadOnlySpan<int> tokenIds) => _prompts.Decode(tokenIds);

    public int[] EncodeChat(IReadOnlyList<ChatMessage> messages, System.Text.Json.JsonElement? tools = null) => _prompts.EncodeChat(messages, tools);

    public PreparedPrompt Prepare(GenerationRequest request)
    {
        if (request.Choices > _engine.MaxSequences)
            throw ApiException.Invalid("n", $"n must be at most {_engine.MaxSequences} on this server (the engine's --max-seqs); got {request.Choices}.");
        return _prompts.Prepare(request, Model.ContextLength);
    }

    public BackendStatistics Statistics
    {
        get
        {
            var c = _engine.Counters;
            return new BackendStatistics((int)c.Running, (int)c.Waiting, c.KvBlocksTotal == 0 ? 0 : (double)c.KvBlocksUsed / c.KvBlocksTotal,
                c.PrefixCacheQueryTokens, c.PrefixCacheHitTokens, c.Preemptions, c.KvBlocksScrubbed, c.KvScrubSecondsBusy, c.KvScrubSecondsIdle,
                SpeculativeDraftTokens: c.DraftTokens, SpeculativeAcceptedTokens: c.AcceptedDraftTokens, SpeculativeVerifications: c.Verifications,
                KvBlocks: c.KvBlocksTotal, KvBlocksTouched: c.KvBlocksTouched);
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
            Speculative = request.Speculative,
        };
        if (request.Speculative is { Method: Bulwark.Engine.Serving.Speculation.SpeculativeMethod.DraftModel } && !_engine.HasDraftModel)
            throw ApiException.Unsupported("speculative.method", $"speculative.method draft_model needs a draft model, and {Model.Id} is served without one (serve --draft-model).");
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
