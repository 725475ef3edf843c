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
    double ScrubBusyShare = 0);

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
        int sharedPrefix, int seed, Action<long>? progress = null)
    {
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
        long done = 0;
        var t0 = Stopwatch.GetTimestamp();
        var runs = requests.Select(request => Task.Run(async () =>
        {
            var startMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            var times = new List<double>(genTokens);
            await foreach (var e in engine.GenerateAsync(request))
            {
                times.Add(startMs + e.SinceArrival.TotalMilliseconds);
                progress?.Invoke(Interlocked.Increment(ref done));
            }
            return (StartMs: startMs, Times: times);
        })).ToArray();
        var results = await Task.WhenAll(runs);
        var seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        var (scrub, step) = (counters.KvScrubSecondsBusy - scrubBefore, counters.StepSeconds - stepBefore);

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
            ScrubBusyShare: scrub + step > 0 ? scrub / (scrub + step) : 0);
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
