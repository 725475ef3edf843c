using System.Diagnostics;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Sampling;

namespace Bulwark.Bench.Serving;

/// <summary>One concurrency level's measurements; JSON names are the ones issue 4 fixes.</summary>
internal sealed record EngineBenchResult(
    int Concurrency,
    double PrefillTokensPerSecond,
    double DecodeTokensPerSecond,
    double TtftMsP50,
    double TtftMsP99,
    double ItlMsP50,
    double ItlMsP99,
    long PeakKvBlocks,
    long GeneratedTokens,
    long PrefixCacheHitTokens,
    long Preemptions,
    double Seconds,
    long ScrubbedBlocks = 0,
    double ScrubBusyShare = 0,
    StepTrace? Trace = null,
    string Arrival = "burst");

/// <summary>
/// What the scheduler decides, independent of how fast the machine is: the engine's steps, the tokens each
/// computed, and for every request its time to first token in steps and the gaps between its tokens in steps
/// and in tokens computed (by every sequence) in between. A gap of 0 steps is a draft accepted in the same step.
/// </summary>
internal sealed record StepTrace(
    long Steps,
    double StepMsMean,
    double MsPerComputedToken,
    double StepTokensP50,
    double StepTokensMax,
    double TtftStepsP50,
    double TtftStepsP99,
    double TtftStepsMax,
    double ItlStepsP50,
    double ItlStepsP99,
    double ItlStepsMax,
    double ItlTokensP50,
    double ItlTokensP99,
    double ItlTokensMax)
{
    /// <summary>One token of a request as the engine reported it.</summary>
    public readonly record struct Token(long Step, long ArrivalStep, long ComputedTokens);

    public static StepTrace From(IReadOnlyList<IReadOnlyList<Token>> requests, long steps, double stepSeconds, long computedTokens)
    {
        var ttft = requests.Where(r => r.Count > 0).Select(r => (double)(r[0].Step - r[0].ArrivalStep)).ToArray();
        var gapSteps = requests.SelectMany(r => r.Zip(r.Skip(1), (a, b) => (double)(b.Step - a.Step))).ToArray();
        var gapTokens = requests.SelectMany(r => r.Zip(r.Skip(1), (a, b) => (double)(b.ComputedTokens - a.ComputedTokens))).ToArray();
        // Tokens of one step: the difference between two consecutive steps that both produced a token.
        var byStep = new SortedDictionary<long, long>();
        foreach (var t in requests.SelectMany(r => r))
            byStep[t.Step] = t.ComputedTokens;
        var stepTokens = byStep.Zip(byStep.Skip(1)).Where(p => p.Second.Key == p.First.Key + 1)
            .Select(p => (double)(p.Second.Value - p.First.Value)).ToArray();
        return new StepTrace(
            steps,
            steps > 0 ? stepSeconds * 1000 / steps : 0,
            computedTokens > 0 ? stepSeconds * 1000 / computedTokens : 0,
            EngineBenchmark.Percentile(stepTokens, 50), Max(stepTokens),
            EngineBenchmark.Percentile(ttft, 50), EngineBenchmark.Percentile(ttft, 99), Max(ttft),
            EngineBenchmark.Percentile(gapSteps, 50), EngineBenchmark.Percentile(gapSteps, 99), Max(gapSteps),
            EngineBenchmark.Percentile(gapTokens, 50), EngineBenchmark.Percentile(gapTokens, 99), Max(gapTokens));
    }

    private static double Max(double[] values) => values.Length == 0 ? 0 : values.Max();
}

/// <summary>
/// Runs <c>concurrency</c> greedy requests at once through an engine and measures them from the
/// engine's own timestamps (each token's time since its request arrived).
/// </summary>
/// <remarks>
/// Prefill rate: all prompt tokens over the time until every request had its first token.
/// Decode rate: tokens produced after that moment over the time from it to the last token, so
/// it is the rate with all sequences decoding together. ITL: gaps between a request's tokens.
/// </remarks>
internal static class EngineBenchmark
{
    public static async Task<EngineBenchResult> RunAsync(LlmEngine engine, int concurrency, int promptTokens, int genTokens,
        int sharedPrefix, int seed, Action<long>? progress = null, ArrivalPattern? arrival = null)
    {
        arrival ??= ArrivalPattern.Burst;
        var offsets = arrival.OffsetsMs(concurrency, seed);
        var random = new Random(seed);
        var vocab = engine.VocabSize;
        var prefix = RandomTokens(random, sharedPrefix, vocab);
        var requests = Enumerable.Range(0, concurrency).Select(_ => new EngineRequest
        {
            PromptTokens = [.. prefix, .. RandomTokens(random, promptTokens - sharedPrefix, vocab)],
            Sampling = new SamplingParams { Temperature = 0, MaxTokens = genTokens, IgnoreEos = true },
        }).ToArray();
        foreach (var r in requests)
            engine.Validate(r);

        var counters = engine.Counters;
        counters.ResetPeakKvBlocks();
        var hitsBefore = counters.PrefixCacheHitTokens;
        var preemptionsBefore = counters.Preemptions;
        var (scrubbedBefore, scrubBefore, stepBefore) = (counters.KvBlocksScrubbed, counters.KvScrubSecondsBusy, counters.StepSeconds);
        var (stepsBefore, computedBefore) = (counters.Steps, counters.BatchedTokens);
        long done = 0;
        var t0 = Stopwatch.GetTimestamp();
        var runs = requests.Select((request, i) => Task.Run(async () =>
        {
            var wait = offsets[i] - Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            if (wait > 0)
                await Task.Delay(TimeSpan.FromMilliseconds(wait));
            var startMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            var times = new List<double>(genTokens);
            var tokens = new List<StepTrace.Token>(genTokens);
            await foreach (var e in engine.GenerateAsync(request))
            {
                times.Add(startMs + e.SinceArrival.TotalMilliseconds);
                tokens.Add(new StepTrace.Token(e.Step, e.ArrivalStep, e.ComputedTokens));
                progress?.Invoke(Interlocked.Increment(ref done));
            }
            return (StartMs: startMs, Times: times, Tokens: (IReadOnlyList<StepTrace.Token>)tokens);
        })).ToArray();
        var results = await Task.WhenAll(runs);
        var seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        var (scrub, step) = (counters.KvScrubSecondsBusy - scrubBefore, counters.StepSeconds - stepBefore);
        var trace = StepTrace.From(results.Select(r => r.Tokens).ToArray(), counters.Steps - stepsBefore, step, counters.BatchedTokens - computedBefore);

        // With arrivals spread out, "every request had its first token" and "all decode together" blur:
        // the rates stay defined as below, the latencies are per request either way.
        var allFirstMs = results.Max(r => r.Times[0]);
        var endMs = results.Max(r => r.Times[^1]);
        var decodeTokens = results.Sum(r => r.Times.Count(t => t > allFirstMs));
        var ttft = results.Select(r => r.Times[0] - r.StartMs).ToArray();
        var itl = results.SelectMany(r => r.Times.Zip(r.Times.Skip(1), (a, b) => b - a)).ToArray();
        return new EngineBenchResult(
            concurrency,
            PrefillTokensPerSecond: Rate((long)concurrency * promptTokens, allFirstMs),
            DecodeTokensPerSecond: Rate(decodeTokens, endMs - allFirstMs),
            TtftMsP50: Percentile(ttft, 50),
            TtftMsP99: Percentile(ttft, 99),
            ItlMsP50: Percentile(itl, 50),
            ItlMsP99: Percentile(itl, 99),
            PeakKvBlocks: counters.KvBlocksPeak,
            GeneratedTokens: results.Sum(r => (long)r.Times.Count),
            PrefixCacheHitTokens: counters.PrefixCacheHitTokens - hitsBefore,
            Preemptions: counters.Preemptions - preemptionsBefore,
            Seconds: seconds,
            ScrubbedBlocks: counters.KvBlocksScrubbed - scrubbedBefore,
            // Of the engine's busy time (forward passes plus clearing while requests ran), the share spent clearing KV blocks.
            ScrubBusyShare: scrub + step > 0 ? scrub / (scrub + step) : 0,
            Trace: trace,
            Arrival: arrival.ToString());
    }

    /// <summary>Nearest-rank percentile (the smallest value with at least p% of values at or below it); 0 for no values.</summary>
    public static double Percentile(IReadOnlyCollection<double> values, double p)
    {
        if (p is < 0 or > 100)
            throw new ArgumentOutOfRangeException(nameof(p), p, "percentile must be between 0 and 100");
        if (values.Count == 0)
            return 0;
        var sorted = values.Order().ToArray();
        var rank = (int)Math.Ceiling(p / 100 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    private static double Rate(long tokens, double milliseconds) => milliseconds > 0 ? tokens / (milliseconds / 1000) : 0;

    private static int[] RandomTokens(Random random, int count, int vocab) =>
        Enumerable.Range(0, count).Select(_ => random.Next(vocab)).ToArray();
}
