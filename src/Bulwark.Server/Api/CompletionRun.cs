using System.Threading.Channels;
using Bulwark.Server.Backends;
using Bulwark.Server.Observability;

namespace Bulwark.Server.Api;

/// <summary>
/// Text a choice adds at one step. <see cref="Tokens"/> holds the generated tokens this text
/// came from, when logprobs were asked for (their text may already have been shown, or be
/// held back by a possible stop string).
/// </summary>
/// <see cref="Format"/> is set on a choice's last delta when the request asked for JSON output.
public readonly record struct ChoiceDelta(int Index, string Text, FinishReason Finish, IReadOnlyList<GeneratedToken>? Tokens, bool MatchedStopString = false,
    Guardrails.Output.FormatCheck? Format = null);

/// <summary>
/// Runs the <c>n</c> choices of one job against the backend at the same time and merges their
/// deltas into one ordered-per-choice stream. Applies stop strings on the decoded text, records
/// time-to-first-token, inter-token latency and token counts. Each choice's text then passes the
/// output guard (stage 9), so a stop string is matched on what the model wrote and redaction sees
/// exactly what the client would. Cancelling the token (client gone, server stopping) or
/// abandoning the enumeration cancels every sequence, which frees its KV blocks.
/// </summary>
public sealed class CompletionRun(
    CompletionJob job, IGenerationBackend backend, RequestCaller caller, ServerMetrics metrics, TimeProvider time, long startedAt, IOutputGuard? guard = null)
{
    private int _completionTokens;
    private int _firstTokenSeen;

    public int PromptTokens => job.PromptTokenIds.Length;

    public int CompletionTokens => Volatile.Read(ref _completionTokens);

    public async IAsyncEnumerable<ChoiceDelta> RunAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        metrics.PromptTokens.Add(job.PromptTokenIds.Length);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var channel = Channel.CreateUnbounded<ChoiceDelta>(new UnboundedChannelOptions { SingleReader = true });
        var producers = new Task[job.Choices];
        for (var i = 0; i < job.Choices; i++) producers[i] = ProduceAsync(i, channel.Writer, stop.Token);
        var all = Task.WhenAll(producers).ContinueWith(t => channel.Writer.TryComplete(t.Exception?.InnerException), TaskScheduler.Default);
        try
        {
            await foreach (var delta in channel.Reader.ReadAllAsync(CancellationToken.None))
                yield return delta;
        }
        finally
        {
            // Reached on completion, on error and when the consumer stops early: in every case no sequence may outlive the request.
            await stop.CancelAsync();
            await all;
        }
    }

    private async Task ProduceAsync(int index, ChannelWriter<ChoiceDelta> output, CancellationToken cancellationToken)
    {
        await Task.Yield();
        var filter = guard?.Begin(caller, job);
        try
        {
            await ProduceAsync(index, filter, output, cancellationToken);
        }
        finally
        {
            // Counted once per choice from its content filter (the token-text filter sees the same secrets again), however the choice ended.
            if (filter is not null)
            {
                var action = filter.Blocked ? "block" : "redact";
                foreach (var rule in filter.Hits) metrics.OutputSecrets.Add(1, new KeyValuePair<string, object?>("rule", rule), new("action", action));
            }
        }
    }

    private async Task ProduceAsync(int index, IOutputFilter? filter, ChannelWriter<ChoiceDelta> output, CancellationToken cancellationToken)
    {
        var matcher = new StopStringMatcher(job.Stop);
        // With response_format JSON the client's final text (after the guard) is checked when the choice ends.
        var sent = job.ResponseFormat is null ? null : new System.Text.StringBuilder();
        List<GeneratedToken>? pending = job.TopLogprobs is null ? null : [];
        // Token texts (logprobs, TGI token events) pass a filter of their own, so a secret spelt over several tokens is redacted there too.
        var tokens = pending is null || filter is null ? null : new TokenGuard(() => guard!.Begin(caller, job));
        var last = 0L;
        var request = job.ToGenerationRequest(index, caller);
        await foreach (var token in backend.GenerateAsync(request, cancellationToken).WithCancellation(cancellationToken))
        {
            if (!token.IsClosingOnly)
            {
                Interlocked.Increment(ref _completionTokens);
                metrics.GenerationTokens.Add(1);
                var now = time.GetTimestamp();
                if (last == 0)
                {
                    if (Interlocked.Exchange(ref _firstTokenSeen, 1) == 0)
                        metrics.TimeToFirstToken.Record(time.GetElapsedTime(startedAt, now).TotalSeconds);
                }
                else metrics.InterTokenLatency.Record(time.GetElapsedTime(last, now).TotalSeconds);
                last = now;
                if (tokens is not null) tokens.Pass(token, pending!);
                else pending?.Add(token);
            }
            var text = Pass(filter, matcher.Push(token.Text));
            if (filter is { Blocked: true })
            {
                // The output guard ended this choice: what it let through is the last text; returning cancels the sequence.
                tokens?.Close(pending);
                output.TryWrite(new ChoiceDelta(index, text, FinishReason.ContentFilter, Take(ref pending), Format: Check(sent, text)));
                return;
            }
            var finish = matcher.Stopped ? FinishReason.Stop : token.Finish;
            if (finish != FinishReason.None)
            {
                var final = text + Close(filter, matcher.Flush());
                tokens?.Close(pending);
                output.TryWrite(new ChoiceDelta(index, final, finish, Take(ref pending), matcher.Stopped, Check(sent, final)));
                return;
            }
            sent?.Append(text);
            if (text.Length > 0) output.TryWrite(new ChoiceDelta(index, text, FinishReason.None, Take(ref pending)));
        }
        // A backend that ends without a finish reason stopped at its own length bound.
        var rest = Close(filter, matcher.Flush());
        tokens?.Close(pending);
        output.TryWrite(new ChoiceDelta(index, rest, FinishReason.Length, Take(ref pending), Format: Check(sent, rest)));
    }

    /// <summary>The check of a choice's whole text (what was sent plus <paramref name="last"/>), or null without a JSON response_format.</summary>
    private Guardrails.Output.FormatCheck? Check(System.Text.StringBuilder? sent, string last) =>
        sent is null ? null : job.ResponseFormat!.Check(sent.Append(last).ToString());

    private static string Pass(IOutputFilter? filter, string text) => filter is null ? text : filter.Push(text);

    /// <summary>The last text of a choice: through the filter, then whatever the filter still held back.</summary>
    private static string Close(IOutputFilter? filter, string text) => filter is null ? text : filter.Push(text) + filter.Flush();

    /// <summary>
    /// The output guard applied to a choice's token texts, which <c>logprobs</c> and TGI's token
    /// events show beside the content. The chosen tokens' texts stream through one filter of
    /// their own: each token shows what that filter releases when it is pushed (empty while text is
    /// held back, the redaction where a secret ends), so the token texts join to the guarded
    /// content. A token's alternatives (<c>top_logprobs</c>, which include the chosen token) are
    /// kept, each passed through the guard alone, once the stream filter has released exactly what
    /// the tokens since the last such point give one by one (nothing held back, no secret spanning
    /// tokens), and each of those tokens then shows its own guarded text. While the filter holds
    /// text the tokens wait (their logprobs come in a later chunk than their text; at most
    /// <see cref="MaxUndecided"/> tokens, and the choice's end releases all); when it holds nothing
    /// and the released text differs, those tokens were rewritten. Tokens whose text became part of a redaction (or
    /// of a blocked ending) show what the filter released (empty, or the redaction where the secret
    /// ends) and lose their alternatives, which would spell the secret's pieces. The shown token
    /// texts always join to the guarded content.
    /// </summary>
    private sealed class TokenGuard(Func<IOutputFilter?> begin)
    {
        /// <summary>Most tokens kept undecided; past it they are released as the filter showed them, without alternatives.</summary>
        public const int MaxUndecided = 64;

        private readonly IOutputFilter _stream = begin() ?? throw new InvalidOperationException("the output guard gave no filter for token texts");
        private readonly System.Text.StringBuilder _shown = new();
        private readonly System.Text.StringBuilder _alone = new();
        private readonly List<(GeneratedToken Token, string Shown, string Alone)> _undecided = [];

        /// <summary>Takes <paramref name="token"/>; adds to <paramref name="pending"/> every token whose guarded text and alternatives are now settled.</summary>
        public void Pass(GeneratedToken token, List<GeneratedToken> pending)
        {
            var shown = _stream.Blocked ? "" : _stream.Push(token.Text);
            var alone = Alone(token.Text);
            _undecided.Add((token, shown, alone));
            _shown.Append(shown);
            _alone.Append(alone);
            if (_stream.Blocked) return;
            if (_shown.Equals(_alone.ToString())) Release(pending, safe: true);
            // The filter holds nothing: these tokens are settled, and they differ from their own texts (a redaction).
            else if (_stream.Held == 0 || _undecided.Count >= MaxUndecided) Release(pending, safe: false);
        }

        /// <summary>At the end of the choice: what the filter still held goes to the last token; every token is released.</summary>
        public void Close(List<GeneratedToken>? pending)
        {
            var rest = _stream.Blocked ? "" : _stream.Flush();
            if (pending is null || _undecided.Count == 0) return;
            _shown.Append(rest);
            _undecided[^1] = _undecided[^1] with { Shown = _undecided[^1].Shown + rest };
            Release(pending, safe: !_stream.Blocked && _shown.Equals(_alone.ToString()));
        }

        private void Release(List<GeneratedToken> pending, bool safe)
        {
            // Safe: nothing was held or rewritten across these tokens, so each shows its own guarded text (matching its
            // logprob) and its alternatives, each guarded alone. Otherwise they show what the filter released, no alternatives.
            foreach (var (token, shown, alone) in _undecided)
            {
                pending.Add(token with
                {
                    Text = safe ? alone : shown,
                    TopLogprobs = token.TopLogprobs is null ? null : safe ? token.TopLogprobs.Select(a => a with { Text = Alone(a.Text) }).ToArray() : [],
                });
            }
            _undecided.Clear();
            _shown.Clear();
            _alone.Clear();
        }

        private string Alone(string text)
        {
            if (text.Length == 0) return text;
            var filter = begin()!;
            return filter.Push(text) + filter.Flush();
        }
    }

    private static IReadOnlyList<GeneratedToken>? Take(ref List<GeneratedToken>? pending)
    {
        if (pending is null || pending.Count == 0) return null;
        var taken = pending;
        pending = [];
        return taken;
    }
}
