using System.Diagnostics;
using System.Text;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Tools;
using Bulwark.Server.Backends;
using Bulwark.Server.Guardrails.GuardModels;
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
/// what it has and <see cref="FinishReason.Deadline"/>. With the guard model's output stage on, what the output filter lets through is
/// further held until a guard check covering it passed (<see cref="ChoiceModeration"/>); a choice the guard blocks ends with
/// <c>content_filter</c> and none of its held text. With it off the loop awaits nothing more than the backend. When the server's drain deadline passes first, <see cref="GenerateAsync"/> throws the 503
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
    private readonly OutputModeration? _moderation;
    private readonly RequestUsage? _usage;
    private CancellationTokenSource? _checks;
    private int _completionTokens;

    internal GenerationRun(BackendCall call, IGenerationBackend backend, IOutputGuard guard, Caller? caller, ServerMetrics metrics, TimeProvider time,
        long startedAt, CancellationToken cancel, CancellationToken hardStop, CancellationToken aborted, CancellationToken deadline = default,
        OutputModeration? moderation = null, RequestUsage? usage = null)
    {
        (_call, _backend, _guard, _caller, _metrics, _time, _startedAt) = (call, backend, guard, caller, metrics, time, startedAt);
        (_cancel, _hardStop, _aborted, _deadline, _moderation, _usage) = (cancel, hardStop, aborted, deadline, moderation, usage);
    }

    /// <summary>True once the request's deadline ended the generation (its unfinished choices end with <see cref="FinishReason.Deadline"/>).</summary>
    public bool DeadlinePassed { get; private set; }

    public GenerationRequest Request => _call.Request;

    /// <summary>The prompt's tokens as the backend reported them, or as it counted them before the call.</summary>
    public int PromptTokens => _call.Usage?.PromptTokens ?? _call.Prompt.TokenCount;

    /// <summary>Output tokens so far, every choice together: what the backend reported, or what was counted as it streamed.</summary>
    public int CompletionTokens => _call.Usage?.CompletionTokens ?? Volatile.Read(ref _completionTokens);

    /// <summary>The upstream pool that serves the model (the metrics' <c>upstream</c> label); null for the embedded engine.</summary>
    public string? Upstream => _backend.Model.Pool;

    /// <summary>Each choice's finish reason as the client saw it (OpenAI's names, <c>deadline</c> apart), once a traced run ended; empty before and untraced.</summary>
    public string[] FinishReasons { get; private set; } = [];

    /// <summary>The choices' deltas as the client sees them; the client leaving or the drain deadline cancels the backend's work.</summary>
    public async IAsyncEnumerable<ChoiceDelta> GenerateAsync()
    {
        var cancellationToken = _cancel;
        var request = _call.Request;
        // The generation metrics' labels: the model, and the upstream pool when the request is forwarded.
        var labels = new TagList { { "model", request.Model } };
        if (Upstream is { } pool) labels.Add("upstream", pool);
        _metrics.PromptTokens.Add(_call.Prompt.TokenCount, labels);
        var choices = new ChoiceState[request.Choices];
        var tenant = _caller?.Tenant ?? request.Tenant;
        for (var i = 0; i < choices.Length; i++) choices[i] = new ChoiceState(_guard, _caller, request, _moderation?.Begin(request, tenant));
        var firstToken = true;
        // Prefill: from the call to the first token (for an upstream, as the gateway sees it); decode: the rest. Never a span per token.
        var traced = _call.Span is not null;
        var phase = traced ? BulwarkTracing.Start(BulwarkTracing.Prefill, parent: _call.Span) : null;
        phase?.SetTag(BulwarkTracing.Attributes.InputTokens, _call.Prompt.TokenCount);
        long guardTicks = 0;
        var ended = false;
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
                    _metrics.GenerationTokens.Add(delta.GeneratedTokens, labels);
                    var now = _time.GetTimestamp();
                    if (firstToken)
                    {
                        _metrics.TimeToFirstToken.Record(_time.GetElapsedTime(_startedAt, now).TotalSeconds, labels);
                        if (phase is not null)
                        {
                            phase.Stop();
                            phase = BulwarkTracing.Start(BulwarkTracing.Decode, parent: _call.Span);
                        }
                    }
                    else if (choice.LastToken != 0) _metrics.InterTokenLatency.Record(_time.GetElapsedTime(choice.LastToken, now).TotalSeconds, labels);
                    firstToken = false;
                    choice.LastToken = now;
                }
                var guardStart = traced ? Stopwatch.GetTimestamp() : 0;
                var passed = choice.Pass(delta);
                if (traced) guardTicks += Stopwatch.GetTimestamp() - guardStart;
                // The output guard ended the choice here: the backend stops computing it.
                if (passed?.Finish == FinishReason.ContentFilter) _call.Choices.Stop(delta.Index);
                if (choice.Moderation is null)
                {
                    if (passed is { } shown) yield return shown;
                }
                else if (choice.Moderation.Hold(passed, delta.GeneratedTokens))
                {
                    foreach (var released in await ModerateAsync(choice, delta.Index)) yield return released;
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
            {
                var last = choices[i].Pass(new ChoiceDelta(i, "", end));
                if (choices[i].Moderation is null)
                {
                    if (last is { } shown) yield return shown;
                }
                else if (choices[i].Moderation!.Hold(last, 0))
                {
                    foreach (var released in await ModerateAsync(choices[i], i)) yield return released;
                }
            }
            ended = true;
        }
        finally
        {
            if (traced)
            {
                // Only a traced run pays for these (the generation span reads FinishReasons).
                FinishReasons = Array.ConvertAll(choices, c => c.Finish is { } f ? BulwarkTracing.Name(f) : "none");
                if (phase is not null) EndPhase(phase, ended);
                TraceOutputGuard(choices, guardTicks);
            }
            _checks?.Dispose();
            if (_moderation is not null && _usage is not null)
                _usage.OutputGuardVerdict = OutputModeration.AuditJson(choices.Select(c => c.Moderation!));
            // Counted once per choice from its content filter (the token-text filter sees the same secrets again), however the choice ended.
            foreach (var choice in choices)
            {
                if (choice.Filter is not { } filter) continue;
                var action = filter.Blocked ? "block" : "redact";
                foreach (var rule in filter.Hits) _metrics.OutputSecrets.Add(1, new KeyValuePair<string, object?>("rule", rule), new("action", action));
            }
        }
    }

    /// <summary>
    /// The guard model's check of a choice's answer so far: the held deltas when it passed; when it blocked, only the choice's end
    /// (<c>content_filter</c>, no text) and the backend stops computing it. The check is not cut by the request's deadline (a check
    /// is bounded by its own timeout, and text the deadline ended must still be checked before it is shown); the client leaving
    /// cancels it, and the drain deadline answers 503 as it would during generation.
    /// </summary>
    private async Task<IReadOnlyList<ChoiceDelta>> ModerateAsync(ChoiceState choice, int index)
    {
        bool passed;
        try
        {
            _checks ??= CancellationTokenSource.CreateLinkedTokenSource(_aborted, _hardStop);
            passed = await choice.Moderation!.CheckAsync(_checks.Token);
        }
        catch (OperationCanceledException) when (_hardStop.IsCancellationRequested && !_aborted.IsCancellationRequested)
        {
            throw ShuttingDown();
        }
        if (passed) return choice.Moderation.Release();
        if (choice.EndFiltered()) _call.Choices.Stop(index);
        return [new ChoiceDelta(index, "", FinishReason.ContentFilter)];
    }

    /// <summary>Ends the prefill or decode span: with the output tokens, and failed with a reason code when the run did not end normally.</summary>
    private void EndPhase(Activity phase, bool ended)
    {
        if (phase.OperationName == BulwarkTracing.Decode) phase.SetTag(BulwarkTracing.Attributes.OutputTokens, CompletionTokens);
        if (ended) phase.Stop();
        else BulwarkTracing.Fail(phase, _aborted.IsCancellationRequested ? "client_disconnected" : _hardStop.IsCancellationRequested ? "server_shutting_down" : "generation_failed");
    }

    /// <summary>
    /// Stage 9's span: the output guard runs on every delta inside decode, so its span comes at the end and says what it
    /// did (redactions, blocked choices — by the secret filter or the guard model —, JSON format failures) and the time it spent (<c>bulwark.output_guard.busy_seconds</c>).
    /// </summary>
    private void TraceOutputGuard(ChoiceState[] choices, long busyTicks)
    {
        using var span = BulwarkTracing.Start(BulwarkTracing.OutputGuard, parent: _call.Span);
        if (span is null) return;
        int redactions = 0, blocked = 0, invalidJson = 0;
        foreach (var choice in choices)
        {
            // Blocked by the secret filter or by the guard model's output stage.
            if (choice.Filter is { Blocked: true } || choice.GuardModelBlocked) blocked++;
            if (choice.Filter is { Blocked: false } filter) redactions += filter.Hits.Count;
            if (choice.FormatInvalid) invalidJson++;
        }
        span.SetTag(BulwarkTracing.Attributes.OutputBusy, Stopwatch.GetElapsedTime(0, busyTicks).TotalSeconds);
        span.SetTag(BulwarkTracing.Attributes.OutputRedactions, redactions);
        span.SetTag(BulwarkTracing.Attributes.OutputBlocked, blocked);
        if (invalidJson > 0) span.SetTag("bulwark.output_guard.invalid_json_choices", invalidJson);
        if (blocked > 0) span.SetStatus(ActivityStatusCode.Error, "content_filter");
    }

    internal static ApiException ShuttingDown() =>
        new(StatusCodes.Status503ServiceUnavailable, "The server is shutting down and cancelled this request before it finished. Retry on another replica or later.",
            "server_error", null, "server_shutting_down", TimeSpan.FromSeconds(1));

    /// <summary>
    /// One choice's way through the output guard: its filter, its token texts' filter, its logprobs waiting for their text, its
    /// text so far for the format check, and its tool calls: read from the guarded text in the model's format (so the guard sees a
    /// call's arguments as it sees any text), or, relayed from an upstream, each call's arguments through a filter of their own.
    /// </summary>
    private sealed class ChoiceState
    {
        private readonly TokenTextGuard? _tokens;
        private readonly JsonOutputFormat? _format;
        private readonly StringBuilder? _sent;
        private readonly ToolCallParser? _parser;
        private readonly ToolCallStreamReader? _reader;
        private readonly ContentTokens? _contentTokens;
        private readonly Func<IOutputFilter?> _newFilter;
        private Dictionary<int, IOutputFilter?>? _callFilters;
        private List<GeneratedToken>? _pending;
        private int _calls;

        public ChoiceState(IOutputGuard guard, Caller? caller, GenerationRequest request, ChoiceModeration? moderation)
        {
            Moderation = moderation;
            Filter = guard.Begin(caller, request);
            _newFilter = () => guard.Begin(caller, request);
            _pending = request.TopLogprobs is null ? null : [];
            // Token texts (logprobs, TGI token events) pass a filter of their own, so a secret spelt over several tokens is redacted there too.
            _tokens = _pending is null || Filter is null ? null : new TokenTextGuard(() => guard.Begin(caller, request));
            if (request.ResponseFormat is { } format)
            {
                _format = JsonOutputFormat.Of(format);
                _sent = new StringBuilder();
            }
            // Calls the grammar enforces (tool_choice required or named) cannot be malformed: their arguments stream as they come.
            // Under auto a call is released whole, so that one the model got wrong can still reach the client as text.
            if (request.Tools is { Parse: not ToolCallFormat.None } tools)
            {
                if (request.Constraint?.Field == ToolRequest.EnforcedBy) _reader = new ToolCallStreamReader(tools.Parse, tools.Names);
                else _parser = new ToolCallParser(tools.Parse, tools.Names);
                // As OpenAI, logprobs list content tokens only, not a call's.
                if (_pending is not null) _contentTokens = new ContentTokens(_reader?.Runs ?? _parser!.Runs);
            }
        }

        public IOutputFilter? Filter { get; }

        /// <summary>The guard model's output stage for this choice; null when it is off.</summary>
        public ChoiceModeration? Moderation { get; }

        public bool Done { get; private set; }

        /// <summary>The finish reason the client saw; null while the choice runs.</summary>
        public FinishReason? Finish { get; private set; }

        /// <summary>True when the JSON <c>response_format</c> check failed on the choice's text.</summary>
        public bool FormatInvalid { get; private set; }

        public long LastToken { get; set; }

        /// <summary>True once the guard model's output stage blocked the choice.</summary>
        public bool GuardModelBlocked { get; private set; }

        /// <summary>The guard model blocked the choice: it ends with content_filter. True when it was still running (the backend must stop it).</summary>
        public bool EndFiltered()
        {
            var running = !Done;
            GuardModelBlocked = true;
            Done = true;
            Finish = FinishReason.ContentFilter;
            return running;
        }

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
            var relayed = Relay(delta.ToolCalls, out var callBlocked);
            if (Filter is { Blocked: true } || callBlocked)
            {
                // What the guard let through is the last text of this choice.
                Done = true;
                Finish = FinishReason.ContentFilter;
                _tokens?.Close(_pending);
                var (content, calls) = Calls(text, relayed, final: true);
                return new ChoiceDelta(delta.Index, content, FinishReason.ContentFilter, Take(final: true)) { Format = Check(content), ToolCalls = calls };
            }
            if (delta.Finish is { } finish)
            {
                Done = true;
                Finish = finish;
                var final = Filter is null ? text : text + Filter.Flush();
                FlushRelayed(ref relayed);
                _tokens?.Close(_pending);
                var (content, calls) = Calls(final, relayed, final: true);
                return new ChoiceDelta(delta.Index, content, finish, Take(final: true))
                {
                    StopStringMatched = delta.StopStringMatched, Format = Check(content), ToolCalls = calls, CalledTools = _calls > 0,
                };
            }
            var (shown, pieces) = Calls(text, relayed, final: false);
            _sent?.Append(shown);
            return shown.Length > 0 || pieces is not null ? new ChoiceDelta(delta.Index, shown, null, Take()) { ToolCalls = pieces } : null;
        }

        /// <summary>The content to show and the call pieces to send: parsed from <paramref name="text"/> in the model's format, or relayed.</summary>
        private (string Content, IReadOnlyList<ToolCallDelta>? Calls) Calls(string text, List<ToolCallDelta>? relayed, bool final)
        {
            if (_reader is not null) return Stream(text, final);
            if (_parser is null) return (text, relayed is { Count: > 0 } ? relayed : null);
            var output = _parser.Push(text);
            if (final && _parser.Finish() is { } rest && (rest.Content.Length > 0 || rest.Calls.Count > 0))
                output = new ToolCallOutput(output.Content + rest.Content, [.. output.Calls, .. rest.Calls]);
            if (output.Calls.Count == 0) return (output.Content, null);
            var pieces = new List<ToolCallDelta>(output.Calls.Count);
            foreach (var call in output.Calls) pieces.Add(new ToolCallDelta(_calls++, call.Id, call.Name, call.Arguments));
            return (output.Content, pieces);
        }

        /// <summary>Enforced calls: the opening piece once a call's name is read, then its arguments in the fragments the text came in.</summary>
        private (string Content, IReadOnlyList<ToolCallDelta>? Calls) Stream(string text, bool final)
        {
            var read = _reader!.Push(text);
            if (final && _reader.Finish() is { } rest && (rest.Content.Length > 0 || rest.Pieces.Count > 0))
                read = new ToolCallPieces(read.Content + rest.Content, [.. read.Pieces, .. rest.Pieces]);
            _calls = _reader.CallCount;
            if (read.Pieces.Count == 0) return (read.Content, null);
            return (read.Content, [.. read.Pieces.Select(p => new ToolCallDelta(p.Index, p.Id, p.Name, p.Arguments))]);
        }

        /// <summary>An upstream's call pieces, each call's arguments through a filter of its own (null: none came).</summary>
        private List<ToolCallDelta>? Relay(IReadOnlyList<ToolCallDelta>? pieces, out bool blocked)
        {
            blocked = false;
            if (pieces is null) return null;
            var result = new List<ToolCallDelta>(pieces.Count);
            _callFilters ??= [];
            foreach (var piece in pieces)
            {
                if (!_callFilters.TryGetValue(piece.Index, out var filter))
                {
                    _callFilters[piece.Index] = filter = _newFilter();
                    _calls++;
                }
                var arguments = filter is null ? piece.Arguments : filter.Push(piece.Arguments);
                blocked |= filter is { Blocked: true };
                if (piece.Id is not null || piece.Name is not null || arguments.Length > 0) result.Add(piece with { Arguments = arguments });
            }
            return result;
        }

        private void FlushRelayed(ref List<ToolCallDelta>? relayed)
        {
            foreach (var (index, filter) in _callFilters ?? [])
                if (filter?.Flush() is { Length: > 0 } rest) (relayed ??= []).Add(new ToolCallDelta(index, null, null, rest));
        }

        /// <summary>The check of the choice's whole text (what was sent plus <paramref name="last"/>), or null without a JSON response_format.</summary>
        private FormatCheck? Check(string last)
        {
            var check = _format?.Check(_sent!.Append(last).ToString());
            if (check is { Valid: false }) FormatInvalid = true;
            return check;
        }

        private IReadOnlyList<GeneratedToken>? Take(bool final = false)
        {
            if (_contentTokens is not null)
            {
                var listed = new List<GeneratedToken>();
                _contentTokens.Sort(_pending!, listed, final);
                return listed.Count == 0 ? null : listed;
            }
            if (_pending is null || _pending.Count == 0) return null;
            var taken = _pending;
            _pending = [];
            return taken;
        }
    }
}
