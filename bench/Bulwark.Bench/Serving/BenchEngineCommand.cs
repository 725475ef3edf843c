using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Bulwark.Engine.KvCache;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Scheduling;

namespace Bulwark.Bench.Serving;

/// <summary>
/// <c>bench/run engine</c>: loads a model in-process and runs the engine at each concurrency,
/// reporting prefill and aggregate decode throughput, TTFT and ITL percentiles and peak KV blocks.
/// Progress goes to standard error so <c>--json</c> output stays clean.
/// </summary>
internal static class BenchEngineCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "A .gguf file or a Hugging Face model folder.", Required = true };
        var concurrency = new Option<string>("--concurrency") { Description = "Comma-separated numbers of concurrent sequences.", DefaultValueFactory = _ => "1,8,32" };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Prompt length of every request, in tokens.", DefaultValueFactory = _ => 128 };
        var genTokens = new Option<int>("--gen-tokens") { Description = "Tokens generated per request (EOS ignored).", DefaultValueFactory = _ => 64 };
        var sharedPrefix = new Option<int>("--shared-prefix") { Description = "Leading prompt tokens all requests of a run share.", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print an array with one object per concurrency instead of a table." };
        var kvMemory = new Option<string?>("--kv-cache-memory") { Description = "KV cache size, e.g. 2GiB or 512MiB (default: enough for the largest concurrency without preemption)." };
        var maxBatched = new Option<int>("--max-batched-tokens") { Description = "Tokens per forward step.", DefaultValueFactory = _ => 512 };
        var blockSize = new Option<int>("--block-size") { Description = "Token slots per KV block.", DefaultValueFactory = _ => 16 };
        var seed = new Option<int>("--seed") { Description = "Seed of the random prompts.", DefaultValueFactory = _ => 1 };
        var quantize = new Option<string?>("--quantize")
        {
            Description = "Quantize the model's F32/F16/BF16 matrices to q8_0 or q4_0 while loading (as `bulwark models quantize` would); already-quantized weights stay as they are.",
        };
        var kvDtype = new Option<string>("--kv-cache-dtype") { Description = "How the KV cache stores keys and values: f32 or f16.", DefaultValueFactory = _ => "f32" };
        var arrival = new Option<string>("--arrival")
        {
            Description = "Comma-separated arrival patterns, each run at every concurrency: burst (all at once), poisson:RATE (requests per second, gaps drawn from --seed), staggered:MS (one every MS ms).",
            DefaultValueFactory = _ => "burst",
        };
        var prefillCap = new Option<int>("--max-prefill-while-decoding")
        {
            Description = "Prefill (and draft) tokens a step may carry while any sequence decodes (the engine's option of that name).",
            DefaultValueFactory = _ => new SchedulerOptions().MaxPrefillTokensWhileDecoding,
        };
        var command = new Command("engine", "Measure the serving engine in-process at several concurrency levels.")
        {
            model, concurrency, promptTokens, genTokens, sharedPrefix, json, kvMemory, maxBatched, blockSize, seed, quantize, kvDtype, arrival, prefillCap,
        };
        command.SetAction(async (result, ct) =>
        {
            try
            {
                var settings = new BenchEngineSettings(
                    result.GetValue(model)!, ParseConcurrency(result.GetValue(concurrency)!), result.GetValue(promptTokens),
                    result.GetValue(genTokens), result.GetValue(sharedPrefix), ParseSize(result.GetValue(kvMemory)),
                    result.GetValue(maxBatched), result.GetValue(blockSize), result.GetValue(seed), LoadQuantization.Parse(result.GetValue(quantize)),
                    ParseKvCacheType(result.GetValue(kvDtype)!), ParseArrivals(result.GetValue(arrival)!), result.GetValue(prefillCap));
                var results = await RunAsync(settings, Console.Error);
                Console.WriteLine(result.GetValue(json) ? ToJson(results) : ToTable(results));
                return 0;
            }
            catch (Exception e) when (e is ArgumentException or FileNotFoundException or NotSupportedException or Engine.Formats.ModelFormatException)
            {
                Console.Error.WriteLine($"bench engine: {e.Message}");
                return 2;
            }
        });
        return command;
    }

    public static async Task<IReadOnlyList<EngineBenchResult>> RunAsync(BenchEngineSettings s, TextWriter progress)
    {
        s.Validate();
        if (!File.Exists(s.ModelPath) && !Directory.Exists(s.ModelPath))
            throw new FileNotFoundException($"model file not found: {s.ModelPath}", s.ModelPath);
        using var model = ModelLoader.Load(s.ModelPath, new ModelLoadOptions { QuantizeTo = s.QuantizeTo, Notice = progress.WriteLine });
        using var executor = new PagedLlamaExecutor(model, kvCacheType: s.KvCacheType);
        var perSequence = (s.PromptTokens + s.GenTokens + s.BlockSize - 1) / s.BlockSize;
        var options = new EngineOptions
        {
            BlockSize = s.BlockSize,
            KvCacheBlocks = s.KvCacheBytes is null ? s.Concurrency.Max() * perSequence + 1 : null,
            KvCacheMemoryBytes = s.KvCacheBytes ?? 0,
            Scheduler = new SchedulerOptions
            {
                MaxBatchedTokens = s.MaxBatchedTokens, MaxPrefillChunk = s.MaxBatchedTokens, MaxSequences = s.Concurrency.Max(),
                MaxPrefillTokensWhileDecoding = s.MaxPrefillWhileDecoding,
            },
        };
        using var engine = new LlmEngine(executor, options);
        var c = model.Config;
        progress.WriteLine($"bench engine: {Path.GetFileName(s.ModelPath)} ({c.Architecture}, {c.LayerCount} layers, dim {c.EmbeddingLength}), " +
            $"{engine.Counters.KvBlocksTotal} KV blocks of {s.BlockSize}, prompt {s.PromptTokens} (shared {s.SharedPrefix}), gen {s.GenTokens}, " +
            $"prefill cap while decoding {s.MaxPrefillWhileDecoding}");
        // Warm-up: the first steps pay for JIT compilation and page faults on the weights.
        await EngineBenchmark.RunAsync(engine, 1, Math.Min(4, s.PromptTokens), 2, 0, s.Seed + 1000);

        var results = new List<EngineBenchResult>();
        foreach (var pattern in s.Arrivals ?? [ArrivalPattern.Burst])
        foreach (var n in s.Concurrency)
        {
            var total = (long)n * s.GenTokens;
            var interactive = !Console.IsErrorRedirected;
            var lastDraw = 0L;
            void Report(long done)
            {
                var now = Environment.TickCount64;
                if (!interactive || now - lastDraw < 200)
                    return;
                lastDraw = now;
                progress.Write($"\rconcurrency {n}: {done}/{total} tokens");
            }
            var r = await EngineBenchmark.RunAsync(engine, n, s.PromptTokens, s.GenTokens, s.SharedPrefix, s.Seed + n, Report, pattern);
            progress.WriteLine($"{(interactive ? "\r" : "")}concurrency {n} ({pattern}): {r.GeneratedTokens}/{total} tokens in {r.Seconds:0.0} s, decode {r.DecodeTokensPerSecond:0.0} tok/s");
            results.Add(r);
        }
        return results;
    }

    public static string ToJson(IEnumerable<EngineBenchResult> results) => JsonSerializer.Serialize(results.Select(r => new Dictionary<string, object>
    {
        ["concurrency"] = r.Concurrency,
        ["prefill_tokens_per_s"] = Math.Round(r.PrefillTokensPerSecond, 2),
        ["decode_tokens_per_s"] = Math.Round(r.DecodeTokensPerSecond, 2),
        ["ttft_ms_p50"] = Math.Round(r.TtftMsP50, 2),
        ["ttft_ms_p99"] = Math.Round(r.TtftMsP99, 2),
        ["itl_ms_p50"] = Math.Round(r.ItlMsP50, 2),
        ["itl_ms_p99"] = Math.Round(r.ItlMsP99, 2),
        ["peak_kv_blocks"] = r.PeakKvBlocks,
        ["generated_tokens"] = r.GeneratedTokens,
        ["prefix_cache_hit_tokens"] = r.PrefixCacheHitTokens,
        ["preemptions"] = r.Preemptions,
        ["kv_blocks_scrubbed"] = r.ScrubbedBlocks,
        ["kv_scrub_busy_share"] = Math.Round(r.ScrubBusyShare, 6),
        ["arrival"] = r.Arrival,
        ["steps"] = r.Trace?.Steps ?? 0,
        ["step_ms_mean"] = Math.Round(r.Trace?.StepMsMean ?? 0, 3),
        ["ms_per_computed_token"] = Math.Round(r.Trace?.MsPerComputedToken ?? 0, 4),
        ["step_tokens_p50"] = r.Trace?.StepTokensP50 ?? 0,
        ["step_tokens_max"] = r.Trace?.StepTokensMax ?? 0,
        ["ttft_steps_p50"] = r.Trace?.TtftStepsP50 ?? 0,
        ["ttft_steps_p99"] = r.Trace?.TtftStepsP99 ?? 0,
        ["ttft_steps_max"] = r.Trace?.TtftStepsMax ?? 0,
        ["itl_steps_p50"] = r.Trace?.ItlStepsP50 ?? 0,
        ["itl_steps_p99"] = r.Trace?.ItlStepsP99 ?? 0,
        ["itl_steps_max"] = r.Trace?.ItlStepsMax ?? 0,
        ["itl_computed_tokens_p50"] = r.Trace?.ItlTokensP50 ?? 0,
        ["itl_computed_tokens_p99"] = r.Trace?.ItlTokensP99 ?? 0,
        ["itl_computed_tokens_max"] = r.Trace?.ItlTokensMax ?? 0,
    }));

    public static string ToTable(IReadOnlyList<EngineBenchResult> results)
    {
        var lines = new List<string>
        {
            $"{"conc",5} {"prefill tok/s",14} {"decode tok/s",13} {"ttft p50 ms",12} {"ttft p99 ms",12} {"itl p50 ms",11} {"itl p99 ms",11} {"peak kv",8} {"preempt",8} {"scrub %",8}",
        };
        foreach (var r in results)
            lines.Add($"{r.Concurrency,5} {r.PrefillTokensPerSecond,14:0.0} {r.DecodeTokensPerSecond,13:0.0} {r.TtftMsP50,12:0.0} {r.TtftMsP99,12:0.0} {r.ItlMsP50,11:0.0} {r.ItlMsP99,11:0.0} {r.PeakKvBlocks,8} {r.Preemptions,8} {r.ScrubBusyShare * 100,8:0.000}  {r.Arrival}");
        if (results.Count > 1 && results[0].DecodeTokensPerSecond > 0)
            lines.Add($"decode speed-up at {results[^1].Concurrency} vs {results[0].Concurrency}: {results[^1].DecodeTokensPerSecond / results[0].DecodeTokensPerSecond:0.00}x");
        // The scheduler's decisions, independent of the machine's load: steps and tokens computed.
        lines.Add("step trace (what the scheduler decided; ttft in steps, itl as the gap in steps and in tokens computed by all sequences):");
        lines.Add($"{"conc",5} {"steps",7} {"step ms",8} {"ms/token",9} {"tok/step p50",13} {"max",5} {"ttft st p50",12} {"p99",5} {"max",5} {"itl st p99",11} {"max",4} {"itl tok p50",12} {"p99",5} {"max",5}  arrival");
        foreach (var r in results)
        {
            if (r.Trace is not { } t)
                continue;
            lines.Add($"{r.Concurrency,5} {t.Steps,7} {t.StepMsMean,8:0.0} {t.MsPerComputedToken,9:0.000} {t.StepTokensP50,13:0} {t.StepTokensMax,5:0} {t.TtftStepsP50,12:0} {t.TtftStepsP99,5:0} {t.TtftStepsMax,5:0} {t.ItlStepsP99,11:0} {t.ItlStepsMax,4:0} {t.ItlTokensP50,12:0} {t.ItlTokensP99,5:0} {t.ItlTokensMax,5:0}  {r.Arrival}");
        }
        return string.Join(Environment.NewLine, lines);
    }

    public static int[] ParseConcurrency(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0)
            throw new ArgumentException($"--concurrency must list at least one number; got \"{text}\"");
        return parts.Select(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 4096
            ? n
            : throw new ArgumentException($"--concurrency values must be whole numbers between 1 and 4096; got \"{p}\"")).ToArray();
    }

    /// <summary>Bytes from "123", "512MiB", "2GiB", "64KiB" (also KB/MB/GB as powers of 1000); null stays null.</summary>
    public static long? ParseSize(string? text)
    {
        if (text is null)
            return null;
        var t = text.Trim();
        var units = new (string Suffix, long Factor)[]
        {
            ("KiB", 1L << 10), ("MiB", 1L << 20), ("GiB", 1L << 30), ("KB", 1000), ("MB", 1000_000), ("GB", 1000_000_000), ("B", 1),
        };
        var (number, factor) = (t, 1L);
        foreach (var (suffix, f) in units)
        {
            if (t.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                (number, factor) = (t[..^suffix.Length].Trim(), f);
                break;
            }
        }
        if (!long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value < 1 || value > long.MaxValue / factor)
            throw new ArgumentException($"--kv-cache-memory must be a positive size such as 512MiB or 2GiB; got \"{text}\"");
        return value * factor;
    }

    public static ArrivalPattern[] ParseArrivals(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0)
            throw new ArgumentException($"--arrival must list at least one pattern; got \"{text}\"");
        return parts.Select(ArrivalPattern.Parse).ToArray();
    }

    internal static KvCacheType ParseKvCacheType(string text) =>
        KvCacheTypeNames.TryParse(text, out var type) ? type : throw new ArgumentException($"--kv-cache-dtype must be f32 or f16; got \"{text}\"");
}

/// <summary>The arguments of <c>bench engine</c>, checked together.</summary>
internal sealed record BenchEngineSettings(
    string ModelPath, int[] Concurrency, int PromptTokens, int GenTokens, int SharedPrefix,
    long? KvCacheBytes = null, int MaxBatchedTokens = 512, int BlockSize = 16, int Seed = 1, Engine.Formats.GgmlType? QuantizeTo = null,
    KvCacheType KvCacheType = KvCacheType.F32, ArrivalPattern[]? Arrivals = null, int MaxPrefillWhileDecoding = 64)
{
    public void Validate()
    {
        if (PromptTokens is < 1 or > 1_000_000)
            throw new ArgumentException($"--prompt-tokens must be between 1 and 1000000; got {PromptTokens}");
        if (GenTokens is < 1 or > 1_000_000)
            throw new ArgumentException($"--gen-tokens must be between 1 and 1000000; got {GenTokens}");
        if (SharedPrefix < 0 || SharedPrefix > PromptTokens)
            throw new ArgumentException($"--shared-prefix must be between 0 and --prompt-tokens ({PromptTokens}); got {SharedPrefix}");
        if (MaxBatchedTokens is < 1 or > 1_048_576)
            throw new ArgumentException($"--max-batched-tokens must be between 1 and 1048576; got {MaxBatchedTokens}");
        if (BlockSize is < 1 or > 256)
            throw new ArgumentException($"--block-size must be between 1 and 256; got {BlockSize}");
        if (Concurrency.Length == 0)
            throw new ArgumentException("--concurrency must list at least one number");
        if (MaxPrefillWhileDecoding is < 1 or > 1_048_576)
            throw new ArgumentException($"--max-prefill-while-decoding must be between 1 and 1048576; got {MaxPrefillWhileDecoding}");
    }
}
