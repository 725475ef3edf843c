using System.Diagnostics;
using System.Text.Json;
using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.KvCache;
using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Serving.Scheduling;
using LLama;
using LLama.Common;
using LLama.Native;

namespace Bulwark.Bench;

/// <summary>What one engine did in one child process.</summary>
internal sealed record EngineResult(
    string Engine, double PrefillTokensPerSecond, double DecodeTokensPerSecond,
    Dictionary<int, double> BatchedTokensPerSecond, double PeakRssMiB,
    double EngineShortDecodeTokensPerSecond = 0, double SessionDecodeTokensPerSecond = 0,
    double DecodeTokensPerCpuSecond = 0, double PrefillTokensPerCpuSecond = 0,
    Dictionary<int, double>? BatchedTokensPerCpuSecond = null,
    double EngineShortDecodeTokensPerCpuSecond = 0, double SessionDecodeTokensPerCpuSecond = 0);

/// <summary>
/// One measurement in a fresh process (so peak RSS belongs to one engine): load the file, warm up,
/// time a prefill of N tokens, then N single-token decode steps, then aggregate decode over several
/// sequences. Ours runs through the serving engine (the paged executor), the forward pass it serves
/// with. Prints one JSON line.
/// </summary>
internal static class EngineRun
{
    public const string ChildCommand = "engine-run";

    /// <summary>Prompts of the batched-decode measurement, then this many steps per sequence.</summary>
    private const int BatchPrompt = 32, BatchSteps = 32;

    public static int RunChild(string[] args)
    {
        var a = new BenchArgs(args);
        var engine = a.String("engine", "ours");
        var file = a.String("file", "");
        var threads = a.Int("threads", 2, 1, 256);
        var prefill = a.Int("prefill", 512, 1, 8192);
        var decode = a.Int("decode", 128, 1, 8192);
        var batches = a.List("batch", "").Select(int.Parse).ToArray();
        var session = a.Int("session", 0, 0, 8192);
        var tokens = Tokens(prefill + decode, a.Int("vocab", 32000, 1, 1 << 24));
        var result = engine switch
        {
            "ours" => Ours(file, threads, tokens, prefill, decode, batches, session),
            "llama" => Llama(file, threads, tokens, prefill, decode, batches),
            _ => throw new ArgumentException($"--engine must be ours or llama; got \"{engine}\""),
        };
        Console.WriteLine(JsonSerializer.Serialize(result));
        return 0;
    }

    /// <summary>Fixed pseudo-random token ids: both engines do exactly the same work.</summary>
    private static int[] Tokens(int count, int vocab)
    {
        var random = new Random(1234);
        return Enumerable.Range(0, count).Select(_ => random.Next(3, vocab)).ToArray();
    }

    private static EngineResult Ours(string file, int threads, int[] tokens, int prefill, int decode, int[] batches, int session)
    {
        WorkerPool.ConfigureShared(threads);
        using var model = GgufModelLoader.Load(file);
        double prefillSeconds, decodeSeconds, decodeCpu, prefillCpu;
        // The engine is gone before the batched runs, as llama.cpp's single-sequence context is.
        using (var executor = new PagedLlamaExecutor(model))
        using (var engine = new LlmEngine(executor, SingleSequence(prefill, decode)))
        {
            // Warm-up to the steady state a serving process is in after its first requests (see WarmUp).
            WarmUp(() => OursSingle(engine, tokens[..prefill], Math.Min(decode, 32)));
            (prefillSeconds, decodeSeconds, decodeCpu, prefillCpu) = OursSingle(engine, tokens[..prefill], decode);
        }
        var batched = new Dictionary<int, double>();
        var batchedCpu = new Dictionary<int, double>();
        foreach (var sequences in batches)
        {
            WaitForTiering();
            (batched[sequences], batchedCpu[sequences]) = OursBatched(model, sequences, tokens);
        }
        (double Rate, double PerCpu) engineShort = default, sessionShort = default;
        if (session > 0) (engineShort, sessionShort) = EngineAgainstSession(model, tokens[..ShortPrompt], session);
        return new EngineResult("ours", prefill / prefillSeconds, decode / decodeSeconds, batched, PeakMemory.MiB(), engineShort.Rate, sessionShort.Rate, decode / decodeCpu,
            prefill / prefillCpu, batchedCpu, engineShort.PerCpu, sessionShort.PerCpu);
    }

    /// <summary>
    /// Runs <paramref name="run"/> twice, letting the runtime finish recompiling after each. .NET first runs a method
    /// unoptimized (tier 0) and recompiles it optimized only after 30 calls and a quiet 100 ms, on a background thread
    /// whose CPU time is this process's: after the 16-token warm-up this replaced, a third of the engine thread's samples
    /// in the measured 128-token prefill were tier-0 code, and with 32 decode steps the JIT's own time counted in
    /// decode's CPU seconds (110M Q4_0, one thread: prefill 671–697 tok/CPU-s against 1087–1908 with tiered compilation
    /// off). llama.cpp's kernels are native, so both sides are now measured warm, as a server is after its first requests.
    /// </summary>
    private static void WarmUp(Action run)
    {
        run();
        WaitForTiering();
        run();
        WaitForTiering();
    }

    /// <summary>Waits (at most 5 s) until no method was compiled for 200 ms: the background recompilations are done.</summary>
    private static void WaitForTiering()
    {
        var count = System.Runtime.JitInfo.GetCompiledMethodCount();
        var clock = Stopwatch.StartNew();
        var quietSince = TimeSpan.Zero;
        while (clock.Elapsed.TotalSeconds < 5)
        {
            Thread.Sleep(50);
            var now = System.Runtime.JitInfo.GetCompiledMethodCount();
            if (now != count)
            {
                count = now;
                quietSince = clock.Elapsed;
            }
            else if ((clock.Elapsed - quietSince).TotalMilliseconds >= 200) return;
        }
    }

    /// <summary>Prompt of the engine-against-session decode comparison.</summary>
    private const int ShortPrompt = 16;

    /// <summary>
    /// Greedy decode of one sequence after a short prompt, tokens per second, through the serving engine
    /// (scheduler, paged executor, sampler, event stream) and through <see cref="LlamaSession"/> (the
    /// single-sequence forward pass and an argmax, nothing else): what the serving path costs per step; per second
    /// and per CPU-second (all threads), since the two run one after the other and the load between them moves.
    /// </summary>
    private static ((double Rate, double PerCpu) Engine, (double Rate, double PerCpu) Session) EngineAgainstSession(LlamaModel model, int[] prompt, int decode)
    {
        (double, double) engineRate;
        using (var executor = new PagedLlamaExecutor(model))
        using (var engine = new LlmEngine(executor, SingleSequence(prompt.Length, decode)))
        {
            WarmUp(() => OursSingle(engine, prompt, Math.Min(decode, 32)));
            var run = OursSingle(engine, prompt, decode);
            engineRate = (decode / run.Decode, decode / run.DecodeCpu);
        }
        using var session = new Bulwark.Engine.Model.Reference.LlamaSession(model, prompt.Length + decode + 1);
        var next = 0;
        WarmUp(() =>
        {
            for (var i = 0; i < prompt.Length + Math.Min(decode, 32); i++) Sampler.ArgMax(session.Forward(prompt[i % prompt.Length], i));
        });
        for (var i = 0; i < prompt.Length; i++) next = Sampler.ArgMax(session.Forward(prompt[i], i));
        var cpu = CpuTime();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < decode; i++) next = Sampler.ArgMax(session.Forward(next, prompt.Length + i));
        return (engineRate, (decode / clock.Elapsed.TotalSeconds, decode / (CpuTime() - cpu).TotalSeconds));
    }

    /// <summary>
    /// One sequence: the whole prompt in one step, as llama.cpp takes it in one decode call, then a token
    /// per step. An f32 cache, as the single-sequence runs always measured (an f16 cache attends token by
    /// token, without the tiles); no prefix cache, since the warm-up prompt is the measured one's prefix.
    /// </summary>
    private static EngineOptions SingleSequence(int prefill, int decode)
    {
        const int blockSize = 16;
        return new EngineOptions
        {
            BlockSize = blockSize,
            KvCacheBlocks = (prefill + decode + 1 + blockSize - 1) / blockSize + 1,
            PrefixCaching = false,
            Scheduler = new SchedulerOptions { MaxSequences = 1, MaxBatchedTokens = prefill, MaxPrefillChunk = prefill },
        };
    }

    /// <summary>
    /// Seconds from the request to its first token (the prefill step) and from there to the last of
    /// <paramref name="decode"/> more; and the process CPU seconds (all threads) of those decode steps and of the prefill.
    /// </summary>
    private static (double Prefill, double Decode, double DecodeCpu, double PrefillCpu) OursSingle(LlmEngine engine, int[] prompt, int decode)
    {
        double first = 0, last = 0;
        TimeSpan firstCpu = default, lastCpu = default;
        var startCpu = CpuTime();
        var clock = Stopwatch.StartNew();
        Task.Run(async () =>
        {
            var count = 0;
            // decode + 1 greedy tokens, end of sequence ignored: the prompt's step gives the first.
            await foreach (var e in engine.GenerateAsync(new() { PromptTokens = prompt, Sampling = new SamplingParams { Temperature = 0, MaxTokens = decode + 1, IgnoreEos = true } }))
            {
                if (count++ == 0)
                {
                    first = clock.Elapsed.TotalSeconds;
                    firstCpu = CpuTime();
                }
                last = clock.Elapsed.TotalSeconds;
            }
            lastCpu = CpuTime();
        }).Wait();
        return (first, last - first, (lastCpu - firstCpu).TotalSeconds, (firstCpu - startCpu).TotalSeconds);
    }

    /// <summary>
    /// Aggregate decode through the serving engine (continuous batching over the paged executor):
    /// tokens generated by all sequences once every one has its first token, per second and per CPU-second.
    /// </summary>
    private static (double PerSecond, double PerCpuSecond) OursBatched(LlamaModel model, int sequences, int[] tokens)
    {
        // An f16 KV cache, as llama.cpp's context holds by default (type_k/type_v f16): the same bytes per token on both sides.
        using var executor = new PagedLlamaExecutor(model, kvCacheType: KvCacheType.F16);
        const int blockSize = 16;
        var options = new EngineOptions
        {
            BlockSize = blockSize,
            KvCacheBlocks = sequences * ((BatchPrompt + BatchSteps + 1 + blockSize - 1) / blockSize) + 1,
            Scheduler = new SchedulerOptions { MaxSequences = sequences, MaxBatchedTokens = 512, MaxPrefillChunk = 512 },
        };
        using var engine = new LlmEngine(executor, options);
        var requests = Enumerable.Range(0, sequences).Select(s => new EngineRequest
        {
            PromptTokens = Enumerable.Range(0, BatchPrompt).Select(i => tokens[(s * 7 + i) % tokens.Length]).ToArray(),
            Sampling = new SamplingParams { Temperature = 0, MaxTokens = BatchSteps + 1, IgnoreEos = true },
        }).ToArray();
        var clock = Stopwatch.StartNew();
        var firstTokenAt = new double[sequences];
        var firstTokenCpu = new TimeSpan[sequences];
        var lastTokenAt = new double[sequences];
        var runs = requests.Select((request, s) => Task.Run(async () =>
        {
            var count = 0;
            await foreach (var e in engine.GenerateAsync(request))
            {
                if (count++ == 0)
                {
                    firstTokenAt[s] = clock.Elapsed.TotalSeconds;
                    firstTokenCpu[s] = CpuTime();
                }
                lastTokenAt[s] = clock.Elapsed.TotalSeconds;
            }
        })).ToArray();
        Task.WaitAll(runs);
        var endCpu = CpuTime();
        // Decode window: from the last first token (all prompts done) to the end.
        var lastFirst = Array.IndexOf(firstTokenAt, firstTokenAt.Max());
        return firstTokenAt[lastFirst] < lastTokenAt.Max()
            ? (sequences * BatchSteps / (lastTokenAt.Max() - firstTokenAt[lastFirst]), sequences * BatchSteps / (endCpu - firstTokenCpu[lastFirst]).TotalSeconds)
            : (double.NaN, double.NaN);
    }

    private static EngineResult Llama(string file, int threads, int[] tokens, int prefill, int decode, int[] batches)
    {
        NativeLibraryConfig.All.WithLogCallback((level, message) => { });
        var parameters = new ModelParams(file)
        {
            ContextSize = (uint)(prefill + decode + 16),
            BatchSize = (uint)Math.Max(prefill, 32),
            UBatchSize = (uint)Math.Max(prefill, 32),
            Threads = threads,
            BatchThreads = threads,
            GpuLayerCount = 0,
        };
        using var weights = LLamaWeights.LoadFromFile(parameters);
        double prefillSeconds, decodeSeconds, decodeCpu, prefillCpu;
        using (var context = weights.CreateContext(parameters))
        {
            var batch = new LLamaBatch();
            // The same warm-up as ours (WarmUp): the measured prompt and up to 32 steps, twice, so neither side's
            // measured run pays first-use costs (its compute buffers for a 128-token batch, our JIT).
            WarmUp(() =>
            {
                Decode(context, batch, tokens.AsSpan(0, prefill), 0);
                for (var i = 0; i < Math.Min(decode, 32); i++) Decode(context, batch, tokens.AsSpan(prefill + i, 1), prefill + i);
                context.NativeHandle.MemoryClear(true);
            });

            var startCpu = CpuTime();
            var clock = Stopwatch.StartNew();
            Decode(context, batch, tokens.AsSpan(0, prefill), 0);
            prefillSeconds = clock.Elapsed.TotalSeconds;
            clock.Restart();
            var cpu = CpuTime();
            prefillCpu = (cpu - startCpu).TotalSeconds;
            for (var i = 0; i < decode; i++) Decode(context, batch, tokens.AsSpan(prefill + i, 1), prefill + i);
            decodeSeconds = clock.Elapsed.TotalSeconds;
            decodeCpu = (CpuTime() - cpu).TotalSeconds;
        }

        var batched = new Dictionary<int, double>();
        var batchedCpu = new Dictionary<int, double>();
        foreach (var sequences in batches)
        {
            var bp = new ModelParams(file)
            {
                ContextSize = (uint)(sequences * (BatchPrompt + BatchSteps) + 16),
                BatchSize = 512,
                UBatchSize = 512,
                SeqMax = (uint)sequences,
                Threads = threads,
                BatchThreads = threads,
                GpuLayerCount = 0,
            };
            using var context = weights.CreateContext(bp);
            var batch = new LLamaBatch();
            for (var s = 0; s < sequences; s++)
            {
                batch.Clear();
                for (var i = 0; i < BatchPrompt; i++) batch.Add(tokens[(s * 7 + i) % tokens.Length], i, (LLamaSeqId)s, i == BatchPrompt - 1);
                Check(context.Decode(batch));
            }
            var startCpu = CpuTime();
            var clock = Stopwatch.StartNew();
            for (var step = 0; step < BatchSteps; step++)
            {
                batch.Clear();
                for (var s = 0; s < sequences; s++) batch.Add(tokens[(s + step) % tokens.Length], BatchPrompt + step, (LLamaSeqId)s, true);
                Check(context.Decode(batch));
            }
            batched[sequences] = sequences * BatchSteps / clock.Elapsed.TotalSeconds;
            batchedCpu[sequences] = sequences * BatchSteps / (CpuTime() - startCpu).TotalSeconds;
        }
        return new EngineResult("llama.cpp", prefill / prefillSeconds, decode / decodeSeconds, batched, PeakMemory.MiB(), DecodeTokensPerCpuSecond: decode / decodeCpu,
            PrefillTokensPerCpuSecond: prefill / prefillCpu, BatchedTokensPerCpuSecond: batchedCpu);
    }

    /// <summary>
    /// This process's CPU time, all threads: on a shared machine tokens per CPU-second say what the code
    /// costs when wall clock mostly says who else was running. Both engines' workers busy-wait briefly
    /// between steps, which counts here as it would on an idle machine.
    /// </summary>
    private static TimeSpan CpuTime()
    {
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime;
    }

    private static void Decode(LLamaContext context, LLamaBatch batch, ReadOnlySpan<int> tokens, int start)
    {
        batch.Clear();
        for (var i = 0; i < tokens.Length; i++) batch.Add(tokens[i], start + i, LLamaSeqId.Zero, i == tokens.Length - 1);
        Check(context.Decode(batch));
    }

    private static void Check(DecodeResult result)
    {
        if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {result}");
    }
}
