using System.CommandLine;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Serving.Speculation;
using Bulwark.Engine.Synthesis;

namespace Bulwark.Bench.Serving;

/// <summary>
/// <c>bench/run speculative</c>: decode speed of prompt-lookup speculative decoding against our own plain
/// decoding on a task whose output copies its prompt, greedy, one sequence, alternating runs, medians.
/// The task: a seed S, the model's own greedy continuation D of S (the "passage"), then the prompt
/// S + D + S — the passage and its start again, as in "repeat this text" or an edit that keeps most of it.
/// A model that continues S the way it did before writes D again, and prompt lookup finds it in the prompt.
/// A random-weight model does not: its output depends on the whole context. So by default the benchmark
/// synthesizes a 110M-shape model (dim 768, 12 layers, vocabulary 32000, quantized to Q8_0 at load) and
/// scales every layer's attention-output and MLP-down weights by <c>--context-weight</c> (default 0): each
/// step still computes every matrix at full size, but the layers add nothing to the residual stream, so the
/// model writes a fixed successor of its last token and, given S again, writes D again (the upper bound: the
/// output is a copy). Small weights (0.02) give partial copies; 1 is the plain random model (drafts almost
/// always rejected: their cost). How much of the output really copies D is reported, and the plain and
/// speculative outputs must be identical token for token.
/// With <c>--method draft_model</c> the drafts come from a draft model instead: by default the same synthetic model
/// with <c>--draft-layers</c> layers (2) and the same seed, scaled the same way. Synthetic tensors depend only on the
/// seed and their name, so it has the same embedding, final norm and output head: with the layers adding nothing it
/// computes the very same successor function at a sixth of the cost (the upper bound of a draft model's agreement,
/// said as such); <c>--draft-model</c> names another file.
/// </summary>
internal static class BenchSpeculativeCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "A .gguf file or model folder (default: the synthetic copying 110M-shape model described above)." };
        var quantize = new Option<string?>("--quantize") { Description = "Quantize F32/F16/BF16 matrices to q8_0 or q4_0 while loading (default for the synthetic model: q8_0).", };
        var contextWeight = new Option<float>("--context-weight") { Description = "Scale of the synthetic model's attention-output and MLP-down weights (1: a plain random model).", DefaultValueFactory = _ => 0f };
        var passage = new Option<int>("--passage-tokens") { Description = "Length of the passage D the prompt holds.", DefaultValueFactory = _ => 256 };
        var seedTokens = new Option<int>("--seed-tokens") { Description = "Length of the seed S.", DefaultValueFactory = _ => 16 };
        var genTokens = new Option<int>("--gen-tokens") { Description = "Tokens generated per run (EOS ignored).", DefaultValueFactory = _ => 128 };
        var k = new Option<int>("--num-speculative-tokens") { Description = "Draft tokens per step (1..16).", DefaultValueFactory = _ => 8 };
        var lookupMax = new Option<int>("--prompt-lookup-max") { Description = "Longest tail n-gram looked up (1..8).", DefaultValueFactory = _ => 3 };
        var runs = new Option<int>("--runs") { Description = "Runs of each mode, alternating; medians are reported.", DefaultValueFactory = _ => 3 };
        var seed = new Option<int>("--seed") { Description = "Seed of S.", DefaultValueFactory = _ => 1 };
        var method = new Option<string>("--method") { Description = "ngram (prompt lookup) or draft_model.", DefaultValueFactory = _ => "ngram" };
        method.AcceptOnlyFromAmong("ngram", "draft_model");
        var draftModel = new Option<string?>("--draft-model") { Description = "The draft model's .gguf file or folder for --method draft_model (default: the synthetic model with --draft-layers layers)." };
        var draftLayers = new Option<int>("--draft-layers") { Description = "Layers of the default synthetic draft model.", DefaultValueFactory = _ => 2 };
        var command = new Command("speculative", "Measure prompt-lookup speculative decoding against plain decoding on a task whose output copies the prompt.")
        {
            model, quantize, contextWeight, passage, seedTokens, genTokens, k, lookupMax, runs, seed, method, draftModel, draftLayers,
        };
        command.SetAction(async (r, ct) =>
        {
            var byDraftModel = r.GetValue(method) == "draft_model";
            var spec = new SpeculativeConfig
            {
                Method = byDraftModel ? SpeculativeMethod.DraftModel : SpeculativeMethod.Ngram,
                NumSpeculativeTokens = r.GetValue(k), PromptLookupMax = r.GetValue(lookupMax),
            };
            spec.Validate();
            var path = r.GetValue(model);
            var quantizeTo = LoadQuantization.Parse(r.GetValue(quantize));
            var draftPath = byDraftModel ? r.GetValue(draftModel) : null;
            if (!byDraftModel && r.GetValue(draftModel) is not null)
            {
                Console.Error.WriteLine("bench speculative: --draft-model needs --method draft_model");
                return 2;
            }
            if (byDraftModel && draftPath is null && path is not null)
            {
                Console.Error.WriteLine("bench speculative: with --model, --method draft_model needs --draft-model");
                return 2;
            }
            string? folder = null;
            if (path is null)
            {
                folder = Path.Combine(Path.GetTempPath(), $"bulwark-bench-speculative-{Environment.ProcessId}");
                Directory.CreateDirectory(folder);
                path = Path.Combine(folder, "model.gguf");
                Console.Error.WriteLine("bench speculative: writing the synthetic 110M-shape model...");
                SyntheticModel.WriteGguf(new SyntheticModelSpec
                {
                    Vocab = 32000, Dim = 768, Layers = 12, Heads = 12, KvHeads = 12, FeedForward = 2048, Context = 2048, Seed = 110,
                }, path);
                ScaleLayerOutputs(path, r.GetValue(contextWeight));
                if (byDraftModel && draftPath is null)
                {
                    draftPath = Path.Combine(folder, "draft.gguf");
                    SyntheticModel.WriteGguf(new SyntheticModelSpec
                    {
                        Vocab = 32000, Dim = 768, Layers = r.GetValue(draftLayers), Heads = 12, KvHeads = 12, FeedForward = 2048, Context = 2048, Seed = 110,
                    }, draftPath);
                    ScaleLayerOutputs(draftPath, r.GetValue(contextWeight));
                }
                quantizeTo ??= Engine.Formats.GgmlType.Q8_0;
            }
            try
            {
                await RunAsync(path, quantizeTo, r.GetValue(seedTokens), r.GetValue(passage),
                    r.GetValue(genTokens), spec, r.GetValue(runs), r.GetValue(seed), draftPath);
            }
            finally
            {
                if (folder is not null) Directory.Delete(folder, recursive: true);
            }
            return 0;
        });
        return command;
    }

    private static async Task RunAsync(string path, Engine.Formats.GgmlType? quantize, int seedTokens, int passageTokens, int genTokens,
        SpeculativeConfig spec, int runs, int seed, string? draftPath)
    {
        using var model = ModelLoader.Load(path, new ModelLoadOptions { QuantizeTo = quantize, Notice = Console.Error.WriteLine });
        using var executor = new PagedLlamaExecutor(model);
        using var draft = draftPath is null ? null : ModelLoader.Load(draftPath, new ModelLoadOptions { QuantizeTo = quantize, Notice = Console.Error.WriteLine });
        using var draftExecutor = draft is null ? null : new PagedLlamaExecutor(draft, executor.MaxContextLength);
        var total = seedTokens * 2 + passageTokens + genTokens;
        var blocks = 2 * (total / 16 + 2);
        using var engine = new LlmEngine(executor, new EngineOptions
        {
            BlockSize = 16, KvCacheBlocks = blocks, PrefixCaching = false,
            DraftModel = draftExecutor is null ? null : new DraftModelOptions(draftExecutor) { KvCacheBlocks = blocks },
        });
        var random = new Random(seed);
        var s = Enumerable.Range(0, seedTokens).Select(_ => random.Next(3, executor.VocabSize)).ToArray();
        var (d, _, _) = await GenerateAsync(engine, s, passageTokens, SpeculativeConfig.Off);
        int[] prompt = [.. s, .. d, .. s];
        var c = model.Config;
        Console.WriteLine($"model {Path.GetFileName(path)}: {c.Architecture}, {c.LayerCount} layers, dim {c.EmbeddingLength}, vocabulary {c.VocabularySize}; CPU {CpuName()}, {Environment.ProcessorCount} threads; kernels {Engine.Kernels.Cpu.KernelIsa.Active}");
        Console.WriteLine($"task: seed {seedTokens} + passage {passageTokens} ({d.Distinct().Count()} distinct tokens) + seed again = prompt {prompt.Length}; {genTokens} tokens generated, greedy, 1 sequence");
        Console.WriteLine(draft is null
            ? $"speculative: prompt lookup, k = {spec.NumSpeculativeTokens}, n-gram {spec.PromptLookupMax}..{spec.PromptLookupMin}"
            : $"speculative: draft model {Path.GetFileName(draftPath)} ({draft.Config.LayerCount} layers, dim {draft.Config.EmbeddingLength}), k = {spec.NumSpeculativeTokens}");

        // Warm-up of both paths.
        await GenerateAsync(engine, prompt, 8, SpeculativeConfig.Off);
        await GenerateAsync(engine, prompt, 8, spec);
        var plainRates = new List<double>();
        var specRates = new List<double>();
        var plainCpu = new List<double>();
        var specCpu = new List<double>();
        var acceptance = new List<double>();
        int[]? plainIds = null;
        var identical = true;
        for (var run = 0; run < runs; run++)
        {
            var (plain, plainRate, plainCpuRate) = await GenerateAsync(engine, prompt, genTokens, SpeculativeConfig.Off);
            var drafted = engine.Counters.DraftTokens;
            var accepted = engine.Counters.AcceptedDraftTokens;
            var draftSeconds = engine.Counters.DraftModelSeconds;
            var stepSeconds = engine.Counters.StepSeconds;
            var (speculative, specRate, specCpuRate) = await GenerateAsync(engine, prompt, genTokens, spec);
            var runDrafted = engine.Counters.DraftTokens - drafted;
            var runAccepted = engine.Counters.AcceptedDraftTokens - accepted;
            plainIds ??= plain;
            if (!plain.AsSpan().SequenceEqual(speculative) || !plain.AsSpan().SequenceEqual(plainIds))
            {
                identical = false;
                Console.WriteLine($"  run {run + 1}: outputs differ: speculative from token {FirstDifference(plain, speculative)}, plain against run 1 from token {FirstDifference(plain, plainIds)}");
            }
            plainRates.Add(plainRate);
            specRates.Add(specRate);
            plainCpu.Add(plainCpuRate);
            specCpu.Add(specCpuRate);
            acceptance.Add(runDrafted == 0 ? 0 : (double)runAccepted / runDrafted);
            var draftShare = draft is null ? "" : $"; draft model {100 * (engine.Counters.DraftModelSeconds - draftSeconds) / Math.Max(1e-9, engine.Counters.DraftModelSeconds - draftSeconds + engine.Counters.StepSeconds - stepSeconds):F0} % of forward time";
            Console.WriteLine($"  run {run + 1}: plain {plainRate:F1} tok/s, speculative {specRate:F1} tok/s ({specRate / plainRate:F2}×); per CPU-second plain {plainCpuRate:F1}, speculative {specCpuRate:F1} ({specCpuRate / plainCpuRate:F2}×); drafted {runDrafted}, accepted {runAccepted}{draftShare}");
        }
        var copied = plainIds!.Zip(d).TakeWhile(p => p.First == p.Second).Count();
        var agree = plainIds!.Zip(d).Count(p => p.First == p.Second);
        Console.WriteLine($"output copies the passage: first {copied} of {genTokens} tokens equal D, {agree} of {Math.Min(genTokens, d.Length)} positions agree");
        Console.WriteLine($"median decode: plain {Median(plainRates):F1} tok/s, speculative {Median(specRates):F1} tok/s, speed-up {Median(specRates) / Median(plainRates):F2}×; " +
            $"acceptance {100 * Median(acceptance):F1} %; greedy outputs identical: {(identical ? "yes" : "NO")}");
        Console.WriteLine($"median decode per CPU-second: plain {Median(plainCpu):F1}, speculative {Median(specCpu):F1}, speed-up {Median(specCpu) / Median(plainCpu):F2}×");
    }

    /// <summary>Multiplies every layer's attention-output and MLP-down matrix (F32) by <paramref name="scale"/>, in the file.</summary>
    private static void ScaleLayerOutputs(string path, float scale)
    {
        List<(long Offset, long Bytes)> targets;
        using (var gguf = Engine.Formats.Gguf.GgufFile.Open(path))
            targets = gguf.Tensors
                .Where(t => t.Type == Engine.Formats.GgmlType.F32 && (t.Name.EndsWith(".attn_output.weight", StringComparison.Ordinal) || t.Name.EndsWith(".ffn_down.weight", StringComparison.Ordinal)))
                .Select(t => (t.FileOffset, t.ByteSize))
                .ToList();
        using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        foreach (var (offset, bytes) in targets)
        {
            var buffer = new byte[bytes];
            file.Position = offset;
            file.ReadExactly(buffer);
            var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(buffer.AsSpan());
            for (var i = 0; i < values.Length; i++) values[i] *= scale;
            file.Position = offset;
            file.Write(buffer);
        }
        Console.Error.WriteLine($"bench speculative: scaled {targets.Count} attention-output and MLP-down matrices by {scale}");
    }

    /// <summary>
    /// Greedy ids and decode rates: tokens after the first ÷ wall time from the first token to the last, and ÷ the
    /// process's CPU time over the same span (steadier on a machine shared with other work).
    /// </summary>
    private static async Task<(int[] Ids, double Rate, double CpuRate)> GenerateAsync(LlmEngine engine, int[] prompt, int tokens, SpeculativeConfig spec)
    {
        var ids = new List<int>(tokens);
        TimeSpan first = default, last = default, cpuFirst = default, cpuLast = default;
        var process = System.Diagnostics.Process.GetCurrentProcess();
        await foreach (var e in engine.GenerateAsync(new EngineRequest
        {
            PromptTokens = prompt,
            Sampling = new SamplingParams { Temperature = 0, MaxTokens = tokens, IgnoreEos = true },
            Speculative = spec,
        }))
        {
            process.Refresh();
            if (ids.Count == 0)
            {
                first = e.SinceArrival;
                cpuFirst = process.TotalProcessorTime;
            }
            last = e.SinceArrival;
            cpuLast = process.TotalProcessorTime;
            ids.Add(e.TokenId);
        }
        return ([.. ids], ids.Count > 1 ? (ids.Count - 1) / (last - first).TotalSeconds : 0,
            ids.Count > 1 ? (ids.Count - 1) / Math.Max(1e-6, (cpuLast - cpuFirst).TotalSeconds) : 0);
    }

    private static int FirstDifference(int[] a, int[] b)
    {
        var i = 0;
        while (i < a.Length && i < b.Length && a[i] == b[i]) i++;
        return i;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string CpuName()
    {
        try
        {
            return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
