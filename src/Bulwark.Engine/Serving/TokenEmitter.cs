using Bulwark.Engine.Serving.Sampling;

namespace Bulwark.Engine.Serving;

/// <summary>
/// After a step: samples a choice's next token, appends it, turns it into text, checks every
/// stop condition and writes the token event to the request's stream.
/// </summary>
internal sealed class TokenEmitter
{
    private readonly Sampler _sampler;
    private readonly EngineOptions _options;
    private readonly EngineCounters _counters;
    private readonly HashSet<int> _eos;
    private readonly int[] _eosIds;
    private readonly int _maxContext;

    public TokenEmitter(Sampler sampler, EngineOptions options, EngineCounters counters, int maxContext)
    {
        _sampler = sampler;
        _options = options;
        _counters = counters;
        _eos = new HashSet<int>(options.EosTokenIds);
        _eosIds = [.. options.EosTokenIds];
        _maxContext = maxContext;
    }

    /// <summary>Returns true when the choice has finished.</summary>
    public bool Emit(Choice choice, ReadOnlySpan<float> logits, long now)
    {
        var request = choice.Request;
        var p = request.Sampling;
        var seq = choice.Sequence;
        var top = p.TopLogprobs > 0 ? new TokenLogprob[p.TopLogprobs] : null;
        FinishReason? finish = null;
        int token;
        float logprob;
        if (seq.Constraint is { } state)
        {
            // Constrained: only tokens that keep the output a prefix of the grammar's language; end of sequence only once it is whole.
            var constraint = request.Request.Constraint!;
            var first = seq.OutputCount == 0;
            var mask = constraint.MaskOf(state, first, out var allowed);
            var eos = state.Accepting ? _eosIds : [];
            if (allowed == 0 && eos.Length == 0)
            {
                // A dead end (only a grammar past its stack bound can reach one): the value is unfinished, as when max_tokens cuts it.
                token = _eosIds[0];
                logprob = 0f;
                finish = FinishReason.Length;
            }
            else
            {
                token = _sampler.Sample(logits, p, seq.Tokens[..seq.PromptLength], seq.OutputTokens,
                    ref choice.Random, out logprob, top, mask, eos);
                if (!_eos.Contains(token))
                    seq.Constraint = constraint.Advance(state, token, first);
            }
        }
        else
        {
            token = _sampler.Sample(logits, p, seq.Tokens[..seq.PromptLength], seq.OutputTokens,
                ref choice.Random, out logprob, top);
        }
        seq.Append(token);
        _counters.RecordGenerated();

        var isStopToken = (!p.IgnoreEos && _eos.Contains(token)) || (p.StopTokenIds?.Contains(token) ?? false);
        string? text = null, tokenText = null;
        var stopString = false;
        if (isStopToken)
        {
            finish ??= FinishReason.Stop;
            text = FlushText(choice);
        }
        else
        {
            if (choice.Detokenizer is { } detokenizer)
            {
                text = tokenText = detokenizer.Push(token);
                if (choice.StopMatcher is { } matcher)
                {
                    text = matcher.Push(text);
                    if (matcher.Stopped)
                    {
                        finish = FinishReason.Stop;
                        stopString = true;
                    }
                }
            }
            if (finish is null && (seq.OutputCount >= p.MaxTokens || seq.Count >= _maxContext))
            {
                finish = FinishReason.Length;
                text = text is null ? null : text + FlushText(choice);
            }
        }

        var arrival = request.ArrivalTimestamp;
        request.Events.Writer.TryWrite(new TokenEvent
        {
            Index = choice.Index,
            TokenId = token,
            Text = text,
            TokenText = tokenText,
            StopStringMatched = stopString,
            IsStopToken = isStopToken,
            Logprob = p.Logprobs || top is not null ? logprob : null,
            TopLogprobs = top,
            FinishReason = finish,
            SinceArrival = _options.Time.GetElapsedTime(arrival, now),
            QueueTime = _options.Time.GetElapsedTime(arrival, request.FirstScheduledTimestamp ?? now),
            // The step loop records the step before emitting its tokens, so these count the step itself.
            Step = _counters.Steps,
            ArrivalStep = request.ArrivalStep,
            ComputedTokens = _counters.BatchedTokens,
            PromptTokens = seq.PromptLength,
            CachedPromptTokens = Math.Max(0, request.CachedPromptTokens),
            CompletionTokens = seq.OutputCount,
        });
        return finish is not null;
    }

    private static string? FlushText(Choice choice)
    {
        if (choice.Detokenizer is not { } detokenizer)
            return null;
        var rest = detokenizer.Flush();
        if (choice.StopMatcher is not { } matcher)
            return rest;
        var released = matcher.Push(rest);
        return matcher.Stopped ? released : released + matcher.Flush();
    }
}
