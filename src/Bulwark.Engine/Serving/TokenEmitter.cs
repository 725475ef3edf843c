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
    private readonly int _maxContext;

    public TokenEmitter(Sampler sampler, EngineOptions options, EngineCounters counters, int maxContext)
    {
        _sampler = sampler;
        _options = options;
        _counters = counters;
        _eos = new HashSet<int>(options.EosTokenIds);
        _maxContext = maxContext;
    }

    /// <summary>Returns true when the choice has finished.</summary>
    public bool Emit(Choice choice, ReadOnlySpan<float> logits, long now)
    {
        var request = choice.Request;
        var p = request.Sampling;
        var seq = choice.Sequence;
        var top = p.TopLogprobs > 0 ? new TokenLogprob[p.TopLogprobs] : null;
        var token = _sampler.Sample(logits, p, seq.Tokens[..seq.PromptLength], seq.OutputTokens,
            ref choice.Random, out var logprob, top);
        seq.Append(token);
        _counters.RecordGenerated();

        FinishReason? finish = null;
        var isStopToken = (!p.IgnoreEos && _eos.Contains(token)) || (p.StopTokenIds?.Contains(token) ?? false);
        string? text = null, tokenText = null;
        var stopString = false;
        if (isStopToken)
        {
            finish = FinishReason.Stop;
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
