using System.Diagnostics;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.RateLimiting;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;
using Polly;
using Polly.CircuitBreaker;
using Polly.RateLimiting;
using Polly.Retry;
using Polly.Timeout;

namespace Bulwark.Server.Backends.Upstream;

/// <summary>
/// A model served by a pool of upstream engines — OpenAI-compatible (vLLM, SGLang, TGI's Messages
/// API, llama.cpp's server, Ollama, another Bulwark) or TGI's native protocol — behind the same seam as
/// the embedded engine. A streaming client is relayed the upstream's stream as it comes; a client that
/// waits gets one whole upstream response. Stop strings are applied to the relayed text here too, so a
/// delta never holds one whatever the engine does with them. Attempts go through Polly: a retry (exponential backoff
/// with jitter) on another endpoint for connection failures, timeouts, 429/502/503/504 and open
/// circuits — only while nothing has reached the client; each attempt through its endpoint's
/// breaker, bulkhead and first-byte timeout. When no endpoint can take the request the model's
/// fallbacks are tried, else the client gets a fast 503 with <c>Retry-After</c>. Errors the upstream
/// sends are never passed through: the client gets Bulwark's own, with the upstream's status class.
/// </summary>
public sealed partial class UpstreamBackend : IGenerationBackend, ITokenizingBackend, IEmbeddingBackend
{
    private readonly UpstreamPool _pool;
    private readonly string _served;
    private readonly UpstreamMetrics _metrics;
    private readonly Func<string, ModelLease?> _fallback;
    private readonly ResiliencePipeline _retry;
    private readonly DateTimeOffset _created;

    /// <param name="fallback">Leases another served model by name, for <see cref="UpstreamPoolOptions.Fallbacks"/> (null: not served).</param>
    public UpstreamBackend(UpstreamPool pool, string served, UpstreamMetrics metrics, Func<string, ModelLease?> fallback, TimeProvider time)
    {
        _pool = pool;
        _served = served;
        _metrics = metrics;
        _fallback = fallback;
        _created = time.GetUtcNow();
        var o = pool.Options;
        _retry = new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = o.MaxAttempts - 1,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = o.RetryDelay,
                ShouldHandle = new PredicateBuilder().Handle<UpstreamAttemptException>(e => e.Transient && e.Endpoint is not null),
                OnRetry = args =>
                {
                    if (args.Outcome.Exception is UpstreamAttemptException { Endpoint: { } endpoint }) metrics.Retried(endpoint);
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }

    /// <summary>The pool this model is served from.</summary>
    public UpstreamPool Pool => _pool;

    /// <summary>
    /// The model's card, made again only when a health check replaced some endpoint's model list (the context
    /// length comes from there): the spine reads it several times per request.
    /// </summary>
    public ModelCard Model
    {
        get
        {
            var version = ModelsVersion();
            if (_card is { } card && card.Version == version) return card.Card;
            var made = new ModelCard(_served, _pool.ContextLength(_served), Encoder?.Tokenizer.VocabSize ?? 0, _created, OwnedBy: "upstream:" + _pool.Name)
            {
                Pool = _pool.Name,
                MaxInputBytesPerToken = Encoder?.Tokenizer.MaxInputBytesPerToken ?? 0,
            };
            _card = new CachedCard(made, version);
            return made;
        }
    }

    private int ModelsVersion()
    {
        var version = 0;
        foreach (var e in _pool.Endpoints) version += e.ModelsVersion;
        return version;
    }

    private sealed record CachedCard(ModelCard Card, int Version);

    private volatile CachedCard? _card;

    private PromptEncoder? Encoder => _pool.Encoders.GetValueOrDefault(_served);

    /// <summary>Token-level services need the model's tokenizer, configured per model; without it they are refused.</summary>
    private PromptEncoder Tokenizing => Encoder
        ?? throw ApiException.Unsupported("model", $"'{_served}' is served by an upstream engine and no tokenizer is configured for it ({UpstreamPoolOptions.Section}:{_pool.Name}:Tokenizers).");

    public int[] Encode(string text, bool addSpecialTokens) => Tokenizing.Encode(text, addSpecialTokens);

    public string Decode(ReadOnlySpan<int> tokenIds) => Tokenizing.Decode(tokenIds);

    public int[] EncodeChat(IReadOnlyList<ChatMessage> messages, System.Text.Json.JsonElement? tools = null) => Tokenizing.EncodeChat(messages, tools);

    /// <summary>An upstream's engine counters are its own: nothing to add to Bulwark's engine gauges.</summary>
    public BackendStatistics Statistics => default;

    /// <summary>
    /// The prompt's size: exact with the model's tokenizer when one is configured
    /// (<see cref="UpstreamPoolOptions.Tokenizers"/>: the chat template rendered and tokenized as the
    /// engine will), else an estimate: ⌈UTF-8 bytes / 4⌉ of every text plus 4 tokens per chat message
    /// (role markers), exact for a prompt of token ids. The token quota reserves from it and settles
    /// from the usage the upstream reports.
    /// </summary>
    public PreparedPrompt Prepare(GenerationRequest request)
    {
        _pool.Protocol.Check(request, _served);
        if (Encoder is { } encoder) return encoder.Prepare(request, Model.ContextLength);
        if (request.Prompt?.TokenIds is { } ids) return new PreparedPrompt(ids.Length, true, ids);
        long estimate = 0;
        if (request.Messages is { } messages)
            foreach (var m in messages)
                estimate += (Encoding.UTF8.GetByteCount(m.Content) + (m.ToolCalls?.Sum(c => Encoding.UTF8.GetByteCount(c.Arguments) + c.Name.Length + 16) ?? 0) + 3) / 4 + 4;
        else estimate = (Encoding.UTF8.GetByteCount(request.Prompt?.Text ?? "") + 3) / 4 + 1;
        // The tools are rendered into the prompt by the upstream's template.
        if (request.Tools?.Rendered is { } tools) estimate += (Encoding.UTF8.GetByteCount(tools.GetRawText()) + 3) / 4;
        return new PreparedPrompt((int)Math.Min(int.MaxValue, estimate), false);
    }

    public async IAsyncEnumerable<ChoiceDelta> GenerateAsync(BackendCall call, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var request = call.Request;
        using var total = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        total.CancelAfter(_pool.Options.TotalTimeout);
        Opened opened = default;
        ModelLease? fallback = null;
        try
        {
            opened = await _retry.ExecuteAsync(static (state, ct) => state.Backend.AttemptAsync(state.Call, state.Tried, ct),
                (Backend: this, Call: call, Tried: new HashSet<UpstreamEndpoint>()), total.Token);
        }
        catch (NoEndpointException)
        {
            fallback = FallbackFor() ?? throw Unavailable($"No upstream endpoint of pool '{_pool.Name}' can take a request for '{_served}' now (all are down, failing or at capacity). Retry later.");
        }
        catch (UpstreamAttemptException e)
        {
            throw Failed(e);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ApiException(StatusCodes.Status504GatewayTimeout, $"The upstream engine did not finish within {_pool.Options.TotalTimeout}.",
                "server_error", null, "upstream_timeout");
        }
        if (fallback is not null)
        {
            using (fallback)
                await foreach (var delta in RelayFallbackAsync(fallback.Backend, call, cancellationToken)) yield return delta;
            yield break;
        }

        call.Endpoint = opened.Endpoint.Name;
        var stops = request.Sampling.StopStrings is { Count: > 0 } stopStrings
            ? Enumerable.Range(0, request.Choices).Select(_ => new StopStringMatcher(stopStrings)).ToArray()
            : null;
        if (opened.Whole is { } whole)
        {
            // A whole response was read inside the attempt: nothing can fail any more.
            call.Usage = Usage(opened.Usage, call);
            foreach (var delta in whole)
                if (!call.Choices.IsStopped(delta.Index)) yield return Stopped(delta, stops);
            yield break;
        }
        var pending = new List<ChoiceDelta>();
        var finished = new bool[request.Choices];
        var outcome = "stream_error";
        try
        {
            string? data = opened.First;
            while (data is not null)
            {
                if (data == "[DONE]")
                {
                    outcome = "success";
                    break;
                }
                pending.Clear();
                if (Parse(data, request, pending, opened) is { } usage) call.Usage = Usage(usage, call);
                foreach (var delta in pending)
                {
                    if (finished[delta.Index]) continue; // past a stop string
                    var shown = Stopped(delta, stops);
                    if (shown.Finish is not null) finished[delta.Index] = true;
                    if (!call.Choices.IsStopped(delta.Index)) yield return shown;
                }
                data = await NextAsync(opened, total.Token, cancellationToken);
            }
            if (outcome != "success")
            {
                // The stream ended without [DONE]: complete only if every choice said it finished.
                if (Array.TrueForAll(finished, f => f)) outcome = "success";
                else throw MidStream(opened, "the upstream's stream ended before every choice finished");
            }
        }
        finally
        {
            if (cancellationToken.IsCancellationRequested && outcome != "success") outcome = "cancelled";
            opened.Endpoint.Leave();
            _metrics.Attempt(opened.Endpoint, outcome, Stopwatch.GetElapsedTime(opened.Started));
            AttemptSpan.End(opened.Span, outcome);
            await opened.Reader!.DisposeAsync();
            opened.Response!.Dispose();
        }
    }

    /// <summary>One attempt: pick an endpoint, send through its pipeline, read up to the first event (nothing has reached the client yet).</summary>
    private async ValueTask<Opened> AttemptAsync(BackendCall call, HashSet<UpstreamEndpoint> tried, CancellationToken ct)
    {
        var endpoint = _pool.Pick(_served, tried) ?? throw new NoEndpointException();
        tried.Add(endpoint);
        endpoint.Enter();
        var started = Stopwatch.GetTimestamp();
        // One client span per attempt, under the generation span; its context goes upstream as W3C traceparent.
        var span = AttemptSpan.Start(call.Span, endpoint, tried.Count);
        HttpResponseMessage? response = null;
        SseReader? reader = null;
        try
        {
            // A client that waits for the whole answer gets it from a whole upstream response: one read and one
            // parse instead of a stream of events (the relay is still retried as a whole before anything is sent).
            var stream = call.Request.Stream;
            var body = _pool.Protocol.Body(call.Request, _pool.UpstreamName(_served), stream);
            response = await SendAsync(endpoint, _pool.Protocol.PathOf(call.Request, stream), body, span, started, ct);
            if (!stream)
            {
                var (bytes, length) = await ReadWholeAsync(response, ct);
                var deltas = new List<ChoiceDelta>(call.Request.Choices);
                GenerationUsage? usage;
                try
                {
                    usage = _pool.Protocol.Whole(bytes.AsSpan(0, length), call.Request, deltas);
                }
                finally
                {
                    WholeBody.Return(bytes, length);
                }
                response.Dispose();
                AttemptSucceeded(endpoint, span, started);
                return new Opened(endpoint, null, null, started, null) { Whole = deltas, Usage = usage };
            }
            reader = new SseReader(new LimitedStream(await response.Content.ReadAsStreamAsync(ct), _pool.Options.MaxResponseBytes));
            var opened = new Opened(endpoint, response, reader, started, null);
            var first = await ReadWithin(opened, ct);
            if (first is null) throw new UpstreamAttemptException(endpoint, "stream_error", transient: true);
            return opened with { First = first, Span = span };
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            if (reader is not null) await reader.DisposeAsync();
            response?.Dispose();
            throw AttemptFailed(endpoint, span, started, e);
        }
        catch
        {
            if (reader is not null) await reader.DisposeAsync();
            response?.Dispose();
            AttemptCancelled(endpoint, span, started);
            throw;
        }
    }

    /// <summary>
    /// One request to <paramref name="endpoint"/> through its pipeline (breaker, bulkhead, first-byte timeout). A 429, 502, 503
    /// or 504 is worth another endpoint; any 5xx counts against this one's circuit; another 4xx refuses the request itself.
    /// </summary>
    private async ValueTask<HttpResponseMessage> SendAsync(UpstreamEndpoint endpoint, string path, byte[] body, Activity? span, long started, CancellationToken ct)
    {
        var response = await endpoint.Pipeline.ExecuteAsync(static async (s, token) =>
        {
            using var request = s.Pool.Request(HttpMethod.Post, s.Endpoint, s.Path);
            AttemptSpan.Inject(s.Span, request);
            request.Content = new ByteArrayContent(s.Body);
            // A fixed, valid value: added as text, with nothing to parse or format per request.
            request.Content.Headers.TryAddWithoutValidation("Content-Type", "application/json");
            var r = await s.Pool.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, token);
            if ((int)r.StatusCode >= 500 || r.StatusCode == HttpStatusCode.TooManyRequests)
            {
                var status = r.StatusCode;
                var retryAfter = r.Headers.RetryAfter?.Delta;
                r.Dispose();
                throw new UpstreamAttemptException(s.Endpoint, status == HttpStatusCode.TooManyRequests ? "rate_limited" : "server_error",
                    status is HttpStatusCode.TooManyRequests or HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout, status)
                { RetryAfter = retryAfter };
            }
            return r;
        }, (Pool: _pool, Endpoint: endpoint, Path: path, Body: body, Span: span), ct);
        span?.SetTag("http.response.status_code", (int)response.StatusCode);
        _metrics.FirstByte(endpoint, Stopwatch.GetElapsedTime(started));
        if (response.IsSuccessStatusCode) return response;
        response.Dispose();
        throw Refused(response.StatusCode);
    }

    /// <summary>An attempt that failed (the endpoint left, the outcome counted): what to throw, a retryable <see cref="UpstreamAttemptException"/> or the client's own error.</summary>
    private Exception AttemptFailed(UpstreamEndpoint endpoint, Activity? span, long started, Exception e)
    {
        endpoint.Leave();
        var failure = e switch
        {
            UpstreamAttemptException a => a,
            ApiException => null,
            BrokenCircuitException => new UpstreamAttemptException(endpoint, "breaker_open", true, inner: e),
            RateLimiterRejectedException => new UpstreamAttemptException(endpoint, "saturated", true, inner: e),
            TimeoutRejectedException or OperationCanceledException => new UpstreamAttemptException(endpoint, "timeout", true, inner: e),
            HttpRequestException => new UpstreamAttemptException(endpoint, "connect_error", true, inner: e),
            _ => new UpstreamAttemptException(endpoint, "stream_error", true, inner: e),
        };
        _metrics.Attempt(endpoint, failure?.Outcome ?? "client_error", Stopwatch.GetElapsedTime(started));
        AttemptSpan.End(span, failure?.Outcome ?? "client_error");
        return failure ?? e;
    }

    private void AttemptCancelled(UpstreamEndpoint endpoint, Activity? span, long started)
    {
        endpoint.Leave();
        _metrics.Attempt(endpoint, "cancelled", Stopwatch.GetElapsedTime(started));
        AttemptSpan.End(span, "cancelled");
    }

    private void AttemptSucceeded(UpstreamEndpoint endpoint, Activity? span, long started)
    {
        endpoint.Leave();
        _metrics.Attempt(endpoint, "success", Stopwatch.GetElapsedTime(started));
        AttemptSpan.End(span, "success");
    }

    /// <summary>The next event, within the idle timeout; a failure here is after the client saw tokens, so it ends the stream with an error.</summary>
    private async ValueTask<string?> NextAsync(Opened opened, CancellationToken total, CancellationToken client)
    {
        try
        {
            return await ReadWithin(opened, total);
        }
        catch (OperationCanceledException) when (client.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception e) when (e is IOException or HttpRequestException or InvalidDataException or OperationCanceledException)
        {
            throw MidStream(opened, e is OperationCanceledException ? "the upstream went silent mid-stream" : "the upstream's stream broke");
        }
    }

    private async ValueTask<string?> ReadWithin(Opened opened, CancellationToken ct)
    {
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
        idle.CancelAfter(_pool.Options.IdleTimeout);
        return await opened.Reader!.ReadAsync(idle.Token);
    }

    /// <summary>A whole response body, within the idle timeout and the response size limit, in a pooled buffer the caller gives back (<see cref="WholeBody.Return"/>).</summary>
    private async ValueTask<(byte[] Buffer, int Length)> ReadWholeAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var limit = _pool.Options.MaxResponseBytes;
        var announced = response.Content.Headers.ContentLength;
        if (announced > limit) throw new UpstreamResponseTooLargeException(limit);
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
        idle.CancelAfter(_pool.Options.IdleTimeout);
        await using var body = await response.Content.ReadAsStreamAsync(idle.Token);
        return await WholeBody.ReadAsync(body, announced, limit, idle.Token);
    }

    private GenerationUsage? Parse(string data, GenerationRequest request, List<ChoiceDelta> deltas, Opened opened)
    {
        try
        {
            return _pool.Protocol.Chunk(data, request, deltas);
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidDataException or InvalidOperationException)
        {
            throw MidStream(opened, "the upstream sent a chunk that is not what the OpenAI stream format allows");
        }
    }

    /// <summary>What a protocol that does not count the prompt reports, with Bulwark's estimate of the prompt in its place.</summary>
    private static GenerationUsage? Usage(GenerationUsage? reported, BackendCall call) =>
        reported is { PromptTokens: < 0 } partial ? partial with { PromptTokens = call.Prompt.TokenCount } : reported;

    /// <summary>The delta with the request's stop strings applied: text from a stop string on is cut and the choice ends there.</summary>
    private static ChoiceDelta Stopped(in ChoiceDelta delta, StopStringMatcher[]? stops)
    {
        if (stops is null) return delta;
        var matcher = stops[delta.Index];
        var text = matcher.Push(delta.Text);
        if (matcher.Stopped) return delta with { Text = text, Finish = FinishReason.Stop, StopStringMatched = true };
        return delta.Finish is null ? delta with { Text = text } : delta with { Text = text + matcher.Flush() };
    }

    /// <summary>A failure after the first event: the endpoint leaves the rotation until its next good health check, and the client's stream ends with an error.</summary>
    private ApiException MidStream(Opened opened, string what)
    {
        _pool.Eject(opened.Endpoint);
        return new ApiException(StatusCodes.Status502BadGateway, $"The upstream engine failed while generating: {what}. The text so far is incomplete.",
            "server_error", null, "upstream_failed");
    }

    private ApiException Failed(UpstreamAttemptException e) => e switch
    {
        { Outcome: "timeout" } => new ApiException(StatusCodes.Status504GatewayTimeout, $"The upstream engine did not answer for '{_served}' in time.", "server_error", null, "upstream_timeout"),
        { Outcome: "rate_limited" } => new ApiException(StatusCodes.Status429TooManyRequests, $"The upstream engine for '{_served}' is rate limiting. Retry later.",
            "rate_limit_exceeded", null, "upstream_rate_limited", e.RetryAfter ?? TimeSpan.FromSeconds(1)),
        { Outcome: "breaker_open" or "saturated" } => Unavailable($"Every upstream endpoint for '{_served}' is failing or at capacity. Retry later."),
        _ => new ApiException(StatusCodes.Status502BadGateway,
            $"The upstream engine failed for '{_served}'{(e.Status is { } s ? $" (HTTP {(int)s})" : "")}.", "server_error", null, "upstream_failed", TimeSpan.FromSeconds(1)),
    };

    /// <summary>A 4xx the upstream answered: the request itself was refused. Its body is not passed on (it may name internals).</summary>
    private ApiException Refused(HttpStatusCode status) => (int)status switch
    {
        400 or 422 => new ApiException(StatusCodes.Status400BadRequest, $"The upstream engine for '{_served}' refused the request as invalid (HTTP {(int)status}).",
            "invalid_request_error", null, "upstream_rejected"),
        413 => new ApiException(StatusCodes.Status413PayloadTooLarge, $"The upstream engine for '{_served}' refused the request as too large.",
            "invalid_request_error", null, "upstream_rejected"),
        _ => new ApiException(StatusCodes.Status502BadGateway, $"The upstream engine for '{_served}' refused the gateway's request (HTTP {(int)status}); an operator should check the upstream's configuration and credential.",
            "server_error", null, "upstream_refused"),
    };

    private ApiException Unavailable(string message) =>
        new(StatusCodes.Status503ServiceUnavailable, message, "server_error", null, "upstream_unavailable",
            _pool.Options.HealthInterval > TimeSpan.Zero ? _pool.Options.HealthInterval : _pool.Options.BreakDuration);

    private ModelLease? FallbackFor()
    {
        if (!_pool.Options.Fallbacks.TryGetValue(_served, out var names)) return null;
        foreach (var name in names)
            if (_fallback(name) is { } lease) return lease;
        return null;
    }

    /// <summary>The request on a fallback model, prepared by that model's own backend, relayed as is.</summary>
    private static async IAsyncEnumerable<ChoiceDelta> RelayFallbackAsync(IGenerationBackend fallback, BackendCall call, [EnumeratorCancellation] CancellationToken ct)
    {
        var request = call.Request with { Model = fallback.Model.Id };
        var inner = new BackendCall(request, fallback.Prepare(request), call.Choices);
        await foreach (var delta in fallback.GenerateAsync(inner, ct)) yield return delta;
        call.Usage = inner.Usage;
        call.Endpoint = inner.Endpoint ?? "fallback:" + fallback.Model.Id;
    }

    /// <summary>An attempt that got through: a stream to relay (its response, reader and first event), or a whole response already read.</summary>
    private readonly record struct Opened(UpstreamEndpoint Endpoint, HttpResponseMessage? Response, SseReader? Reader, long Started, string? First)
    {
        public List<ChoiceDelta>? Whole { get; init; }
        /// <summary>The attempt's span, ended when the relayed stream ends.</summary>
        public Activity? Span { get; init; }
        public GenerationUsage? Usage { get; init; }
    }

    /// <summary>No endpoint of the pool can take the request (none serves the model, or all are down, open or full).</summary>
    private sealed class NoEndpointException : Exception;
}
