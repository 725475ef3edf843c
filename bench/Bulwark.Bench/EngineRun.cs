using System.Diagnostics;
using System.Text.Json;
using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Model;
using LLama;
using LLama.Common;
using LLama.Native;

namespace Bulwark.Bench;

/// <summary>What one engine did in one child process.</summary>
internal sealed record EngineResult(
    string Engine, double PrefillTokensPerSecond, double DecodeTokensPerSecond,
    Dictionary<int, double> BatchedTokensPerSecond, double PeakRssMiB);

/// <summary>
/// One measurement in a fresh process (so peak RSS belongs to one engine): load the file, warm up,
/// time a prefill of N tokens, then N single-token decode steps, then (llama.cpp, and ours when a
/// batched executor exists) aggregate decode over several sequences. Prints one JSON line.
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
        var tokens = Tokens(prefill + decode, a.Int("vocab", 32000, 1, 1 << 24));
        var result = engine switch
        {
            "ours" => Ours(file, threads, tokens, prefill, decode),
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

    private static EngineResult Ours(string file, int threads, int[] tokens, int prefill, int decode)
    {
        WorkerPool.ConfigureShared(threads);
        using var model = GgufModelLoader.Load(file);
        using var session = model.CreateSession(prefill + decode);
        session.Prefill(tokens.AsSpan(0, Math.Min(16, prefill)), 0); // JIT and scratch warm-up
        session.Forward(tokens[0], Math.Min(16, prefill));

        var clock = Stopwatch.StartNew();
        session.Prefill(tokens.AsSpan(0, prefill), 0);
        var prefillSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        for (var i = 0; i < decode; i++) session.Forward(tokens[prefill + i], prefill + i);
        var decodeSeconds = clock.Elapsed.TotalSeconds;
        return new EngineResult("ours", prefill / prefillSeconds, decode / decodeSeconds, new(), PeakMemory.MiB());
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
        double prefillSeconds, decodeSeconds;
        using (var context = weights.CreateContext(parameters))
        {
            var batch = new LLamaBatch();
            Decode(context, batch, tokens.AsSpan(0, Math.Min(16, prefill)), 0); // warm-up
            context.NativeHandle.MemoryClear(true);

            var clock = Stopwatch.StartNew();
            Decode(context, batch, tokens.AsSpan(0, prefill), 0);
            prefillSeconds = clock.Elapsed.TotalSeconds;
            clock.Restart();
            for (var i = 0; i < decode; i++) Decode(context, batch, tokens.AsSpan(prefill + i, 1), prefill + i);
            decodeSeconds = clock.Elapsed.TotalSeconds;
        }

        var batched = new Dictionary<int, double>();
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
            var clock = Stopwatch.StartNew();
            for (var step = 0; step < BatchSteps; step++)
            {
                batch.Clear();
                for (var s = 0; s < sequences; s++) batch.Add(tokens[(s + step) % tokens.Length], BatchPrompt + step, (LLamaSeqId)s, true);
                Check(context.Decode(batch));
            }
            batched[sequences] = sequences * BatchSteps / clock.Elapsed.TotalSeconds;
        }
        return new EngineResult("llama.cpp", prefill / prefillSeconds, decode / decodeSeconds, batched, PeakMemory.MiB());
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
