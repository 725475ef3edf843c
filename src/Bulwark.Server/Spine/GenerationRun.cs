using System.Text;
using Bulwark.Engine.Serving;
using Bulwark.Server.Backends;
using Bulwark.Server.Guardrails.Output;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Spine;

/// <summary>
/// Stages 8 and 9 of one admitted request, as the route's writer reads them: the backend's deltas
/// (every choice of the request from one backend call), each choice's text through an output filter
/// of its own (secret redaction, HTML escaping where asked; the JSON <c>response_format</c> check on
/// its last delta), with time to first token, inter-token latency and token counts recorded. A choice
/// the filter blocks ends with <c>content_filter</c> and the backend stops computing it. When the
/// request's own deadline passes, the backend is cancelled and every unfinished choice ends with
/// what it has and <see cref="FinishReason.Deadline"/>. When the server's drain deadline passes first, <see cref="GenerateAsync"/> throws the 503
/// <c>server_shutting_down</c> refusal (a stream writes it as an error event). Enumerate once.
/// </summary>
public sealed class GenerationRun
{
    private readonly BackendCall _call;
    private readonly IGenerationBackend _backend;
    private readonly IOutputGuard _guard;
    private readonly Caller? _caller;
    private readonly ServerMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly long _startedAt;
    private readonly CancellationToken _cancel;
    private readonly CancellationToken _hardStop;
    private readonly CancellationToken _aborted;
    private readonly CancellationToken _deadline;
    private int _completionTokens;

    internal GenerationRun(BackendCall call, IGenerationBackend backend, IOutputGuard guard, Caller? caller, ServerMetrics metrics, TimeProvider time,
        long startedAt, CancellationToken cancel, CancellationToken hardStop, CancellationToken aborted, CancellationToken deadline = default)
    {
        (_call, _backend, _guard, _caller, _metrics, _time, _startedAt) = (call, backend, guard, caller, metrics, time, startedAt);
        (_cancel, _hardStop, _aborted, _deadline) = (cancel, hardStop, aborted, deadline);
    }

    /// <summary>True once the request's deadline ended the generation (its unfinished choices end with <see cref="FinishReason.Deadline"/>).</summary>
    public bool DeadlinePassed { get; private set; }

    public GenerationRequest Request => _call.Request;

    /// <summary>The prompt's tokens as the backend reported them, or as it counted them before the call.</summary>
    public int PromptTokens => _call.Usage?.PromptTokens ?? _call.Prompt.TokenCount;

    /// <summary>Output tokens so far, every choice together: what the backend reported, or what was counted as it streamed.</summary>
    public int CompletionTokens => _call.Usage?.CompletionTokens ?? Volatile.Read(ref _completionTokens);

    /// <summary>The choices' deltas as the client sees them; the client leaving or the drain deadline cancels the backend's work.</summary>
    public async IAsyncEnumerable<ChoiceDelta> GenerateAsync()
    {
        var cancellationToken = _cancel;
        var request = _call.Request;
        var model = new KeyValuePair<string, object?>("model", request.Model);
        _metrics.PromptTokens.Add(_call.Prompt.TokenCount, model);
        var choices = new ChoiceState[request.Choices];
        for (var i = 0; i < choices.Length; i++) choices[i] = new ChoiceState(_guard, _caller, request);
        var firstToken = true;
        try
        {
            await using var deltas = _backend.GenerateAsync(_call, cancellationToken).GetAsyncEnumerator(cancellationToken);
            while (true)
            {
                try
                {
                    if (!await deltas.MoveNextAsync()) break;
                }
                catch (OperationCanceledException) when (_hardStop.IsCancellationRequested && !_aborted.IsCancellationRequested)
                {
                    throw ShuttingDown();
                }
                catch (OperationCanceledException) when (_deadline.IsCancellationRequested && !_aborted.IsCancellationRequested)
                {
                    // The deadline ends every choice still running with what it has so far.
                    DeadlinePassed = true;
                    _metrics.DeadlineExceeded.Add(1, new KeyValuePair<string, object?>("stage", "generation"));
                    break;
                }
                var delta = deltas.Current;
                var choice = choices[delta.Index];
                if (choice.Done) continue;
                if (delta.GeneratedTokens > 0)
                {
                    Interlocked.Add(ref _completionTokens, delta.GeneratedTokens);
                    _metrics.GenerationTokens.Add(delta.GeneratedTokens, model);
                    var now = _time.GetTimestamp();
                    if (firstToken) _metrics.TimeToFirstToken.Record(_time.GetElapsedTime(_startedAt, now).TotalSeconds, model);
                    else if (choice.LastToken != 0) _metrics.InterTokenLatency.Record(_time.GetElapsedTime(choice.LastToken, now).TotalSeconds, model);
                    firstToken = false;
                    choice.LastToken = now;
                }
                if (choice.Pass(delta) is { } shown)
                {
                    // The output guard ended the choice here: the backend stops computing it.
                    if (shown.Finish == FinishReason.ContentFilter) _call.Choices.Stop(delta.Index);
                    yield return shown;
                }
            }
            if (_hardStop.IsCancellationRequested && !_aborted.IsCancellationRequested && Array.Exists(choices, c => !c.Done)) throw ShuttingDown();
            // A backend that ends quietly when cancelled, rather than throwing, was ended by the deadline all the same.
            if (!DeadlinePassed && _deadline.IsCancellationRequested && !_aborted.IsCancellationRequested && Array.Exists(choices, c => !c.Done))
            {
                DeadlinePassed = true;
                _metrics.DeadlineExceeded.Add(1, new KeyValuePair<string, object?>("stage", "generation"));
            }
            // A backend that ends a choice without a finish reason stopped at its own length bound.
            var end = DeadlinePassed ? FinishReason.Deadline : FinishReason.Length;
            for (var i = 0; i < choices.Length; i++)
                if (choices[i].Pass(new ChoiceDelta(i, "", end)) is { } last)
                    yield return last;
        }
        finally
        {
            // Counted once per choice from its content filter (the token-text filter sees the same secrets again), however the choice ended.
            foreach (var choice in choices)
            {
                if (choice.Filter is not { } filter) continue;
                var action = filter.Blocked ? "block" : "redact";
                foreach (var rule in filter.Hits) _metrics.OutputSecrets.Add(1, new KeyValuePair<string, object?>("rule", rule), new("action", action));
            }
        }
    }

    private static ApiException ShuttingDown() =>
        new(StatusCodes.Status503ServiceUnavailable, "The server is shutting down and cancelled this request before it finished. Retry on another replica or later.",
            "server_error", null, "server_shutting_down", TimeSpan.FromSeconds(1));

    /// <summary>One choice's way through the output guard: its filter, its token texts' filter, its logprobs waiting for their text, its text so far for the format check.</summary>
    private sealed class ChoiceState
    {
        private readonly TokenTextGuard? _tokens;
        private readonly JsonOutputFormat? _format;
        private readonly StringBuilder? _sent;
        private List<GeneratedToken>? _pending;

        public ChoiceState(IOutputGuard guard, Caller? caller, GenerationRequest request)
        {
            Filter = guard.Begin(caller, request);
            _pending = request.TopLogprobs is null ? null : [];
            // Token texts (logprobs, TGI token events) pass a filter of their own, so a secret spelt over several tokens is redacted there too.
            _tokens = _pending is null || Filter is null ? null : new TokenTextGuard(() => guard.Begin(caller, request));
            if (request.ResponseFormat is { } format)
            {
                _format = JsonOutputFormat.Of(format);
                _sent = new StringBuilder();
            }
        }

        public IOutputFilter? Filter { get; }

        public bool Done { get; private set; }

        public long LastToken { get; set; }

        /// <summary>What the client sees of <paramref name="delta"/>; null when it shows nothing yet.</summary>
        public ChoiceDelta? Pass(in ChoiceDelta delta)
        {
            if (Done) return null;
            foreach (var token in delta.Tokens ?? [])
            {
                if (_tokens is not null) _tokens.Pass(token, _pending!);
                else _pending?.Add(token);
            }
            var text = Filter is null ? delta.Text : Filter.Push(delta.Text);
            if (Filter is { Blocked: true })
            {
                // What the guard let through is the last text of this choice.
                Done = true;
                _tokens?.Close(_pending);
                return new ChoiceDelta(delta.Index, text, FinishReason.ContentFilter, Take()) { Format = Check(text) };
            }
            if (delta.Finish is { } finish)
            {
                Done = true;
                var final = Filter is null ? text : text + Filter.Flush();
                _tokens?.Close(_pending);
                return new ChoiceDelta(delta.Index, final, finish, Take()) { StopStringMatched = delta.StopStringMatched, Format = Check(final) };
            }
            _sent?.Append(text);
            return text.Length > 0 ? new ChoiceDelta(delta.Index, text, null, Take()) : null;
        }

        /// <summary>The check of the choice's whole text (what was sent plus <paramref name="last"/>), or null without a JSON response_format.</summary>
        private FormatCheck? Check(string last) => _format?.Check(_sent!.Append(last).ToString());

        private IReadOnlyList<GeneratedToken>? Take()
        {
            if (_pending is null || _pending.Count == 0) return null;
            var taken = _pending;
            _pending = [];
            return taken;
        }
    }
}
