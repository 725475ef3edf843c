using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Synthesis;
using LLama;
using LLama.Native;

namespace Bulwark.Bench;

/// <summary>
/// Ours vs llama.cpp on the same synthetic GGUF files: each repetition runs both engines in fresh
/// processes, in alternating order, and the table reports medians and the ratio ours / llama.cpp.
/// </summary>
internal static class ModelBench
{
    /// <summary>The shapes of issue 5 (TinyLlama 1.1B and a small GPT-2-sized model) and a small Mixtral (issue 19).</summary>
    private static readonly Dictionary<string, SyntheticModelSpec> Shapes = new()
    {
        ["tiny"] = new() { Layers = 22, Dim = 2048, Heads = 32, KvHeads = 4, FeedForward = 5632, Vocab = 32000, Context = 2048, Seed = 5 },
        ["small"] = new() { Layers = 12, Dim = 768, Heads = 12, KvHeads = 12, FeedForward = 2048, Vocab = 32000, Context = 2048, Seed = 6 },
        // A small Mixtral: 8 experts, 2 per token (about 350M parameters, 110M active per token).
        ["moe"] = new() { Layers = 8, Dim = 768, Heads = 12, KvHeads = 4, FeedForward = 1024, Vocab = 32000, Context = 2048, Experts = 8, ExpertsUsed = 2, Seed = 19 },
    };

    private static readonly Dictionary<string, GgmlType> DTypes = new()
    {
        ["f16"] = GgmlType.F16, ["q8_0"] = GgmlType.Q8_0, ["q4_0"] = GgmlType.Q4_0, ["bf16"] = GgmlType.BF16, ["f32"] = GgmlType.F32,
    };

    /// <summary>
    /// The file types people download, written by llama.cpp's own quantizer (<c>llama_model_quantize</c>,
    /// output head included) from the shape's f16 file, as the files on model hubs are made.
    /// </summary>
    private static readonly Dictionary<string, LLamaFtype> LlamaQuantized = new()
    {
        ["q4_k_m"] = LLamaFtype.MOSTLY_Q4_K_M, ["q5_k_m"] = LLamaFtype.MOSTLY_Q5_K_M, ["q6_k"] = LLamaFtype.MOSTLY_Q6_K,
        ["q3_k_m"] = LLamaFtype.MOSTLY_Q3_K_M, ["q2_k"] = LLamaFtype.MOSTLY_Q2_K, ["q5_0"] = LLamaFtype.MOSTLY_Q5_0,
        ["q4_1"] = LLamaFtype.MOSTLY_Q4_1, ["q5_1"] = LLamaFtype.MOSTLY_Q5_1, ["iq4_nl"] = LLamaFtype.MOSTLY_IQ4_NL,
        ["iq4_xs"] = LLamaFtype.MOSTLY_IQ4_XS,
    };

    private sealed record Row(string Model, string DType, string Metric, double Ours, double Llama);

    public static int Run(string[] args)
    {
        var a = new BenchArgs(args, "json");
        var models = a.List("models", "tiny,small");
        var dtypes = a.List("dtypes", "f16,q8_0,q4_0");
        var threads = a.Int("threads", 2, 1, 256);
        var reps = a.Int("reps", 3, 1, 100);
        var prefill = a.Int("prefill", 512, 1, 2048);
        var decode = a.Int("decode", 128, 1, 1024);
        var batch = a.String("batch", "8,32");
        var session = a.Int("session", 0, 0, 1024);
        var dir = a.String("dir", Path.Combine(Path.GetTempPath(), "bulwark-bench"));
        foreach (var m in models) if (!Shapes.ContainsKey(m)) throw new ArgumentException($"--models: unknown model \"{m}\" (known: {string.Join(", ", Shapes.Keys)})");
        foreach (var d in dtypes)
            if (!DTypes.ContainsKey(d) && !LlamaQuantized.ContainsKey(d))
                throw new ArgumentException($"--dtypes: unknown type \"{d}\" (known: {string.Join(", ", DTypes.Keys.Concat(LlamaQuantized.Keys))})");

        var rows = new List<Row>();
        foreach (var model in models)
        foreach (var dtype in dtypes)
        {
            var file = EnsureModel(dir, model, Shapes[model], dtype);
            var vocab = Shapes[model].Vocab;
            var ours = new List<EngineResult>();
            var llama = new List<EngineResult>();
            for (var rep = 0; rep < reps; rep++)
            {
                // Alternate which engine goes first, so neither always gets the cooler CPU or warmer cache.
                var order = rep % 2 == 0 ? new[] { "ours", "llama" } : ["llama", "ours"];
                foreach (var engine in order)
                {
                    var r = Child(engine, file, threads, prefill, decode, batch, vocab, engine == "ours" ? session : 0);
                    (engine == "ours" ? ours : llama).Add(r);
                    Console.Error.WriteLine($"  {model} {dtype} rep {rep + 1} {r.Engine}: prefill {r.PrefillTokensPerSecond:F1} tok/s ({r.PrefillTokensPerCpuSecond:F1}/CPU-s), decode {r.DecodeTokensPerSecond:F1} tok/s ({r.DecodeTokensPerCpuSecond:F1}/CPU-s), " +
                        string.Join(", ", r.BatchedTokensPerSecond.Select(kv => $"x{kv.Key} {kv.Value:F1} tok/s")) + $" peak RSS {r.PeakRssMiB:F0} MiB");
                }
            }
            rows.Add(new(model, dtype, $"prefill {prefill} (tok/s)", Median(ours, r => r.PrefillTokensPerSecond), Median(llama, r => r.PrefillTokensPerSecond)));
            rows.Add(new(model, dtype, $"prefill {prefill} (tok/CPU-s)", Median(ours, r => r.PrefillTokensPerCpuSecond), Median(llama, r => r.PrefillTokensPerCpuSecond)));
            rows.Add(new(model, dtype, $"decode {decode} (tok/s)", Median(ours, r => r.DecodeTokensPerSecond), Median(llama, r => r.DecodeTokensPerSecond)));
            rows.Add(new(model, dtype, $"decode {decode} (tok/CPU-s)", Median(ours, r => r.DecodeTokensPerCpuSecond), Median(llama, r => r.DecodeTokensPerCpuSecond)));
            foreach (var s in llama[0].BatchedTokensPerSecond.Keys)
            {
                rows.Add(new(model, dtype, $"decode x{s} seqs (tok/s)", Median(ours, r => r.BatchedTokensPerSecond.GetValueOrDefault(s, double.NaN)), Median(llama, r => r.BatchedTokensPerSecond[s])));
                rows.Add(new(model, dtype, $"decode x{s} seqs (tok/CPU-s)", Median(ours, r => r.BatchedTokensPerCpuSecond?.GetValueOrDefault(s, double.NaN) ?? double.NaN),
                    Median(llama, r => r.BatchedTokensPerCpuSecond?.GetValueOrDefault(s, double.NaN) ?? double.NaN)));
            }
            rows.Add(new(model, dtype, "peak RSS (MiB)", Median(ours, r => r.PeakRssMiB), Median(llama, r => r.PeakRssMiB)));
            if (session > 0)
            {
                // Ours only: the serving engine at one sequence against the bare single-sequence session.
                rows.Add(new(model, dtype, $"decode {session} engine x1 (tok/s)", Median(ours, r => r.EngineShortDecodeTokensPerSecond), double.NaN));
                rows.Add(new(model, dtype, $"decode {session} session (tok/s)", Median(ours, r => r.SessionDecodeTokensPerSecond), double.NaN));
                rows.Add(new(model, dtype, $"decode {session} engine x1 (tok/CPU-s)", Median(ours, r => r.EngineShortDecodeTokensPerCpuSecond), double.NaN));
                rows.Add(new(model, dtype, $"decode {session} session (tok/CPU-s)", Median(ours, r => r.SessionDecodeTokensPerCpuSecond), double.NaN));
            }
        }

        if (a.Flag("json"))
        {
            Console.WriteLine(JsonSerializer.Serialize(rows.Select(r => new
            {
                model = r.Model, dtype = r.DType, metric = r.Metric,
                ours = double.IsNaN(r.Ours) ? (double?)null : r.Ours,
                llama_cpp = double.IsNaN(r.Llama) ? (double?)null : r.Llama,
                ratio = double.IsNaN(r.Ours) || double.IsNaN(r.Llama) ? (double?)null : r.Ours / r.Llama,
            }), new JsonSerializerOptions { WriteIndented = true }));
        }
        else
        {
            Console.WriteLine($"threads {threads}, {reps} repetitions, medians; CPU kernels: {Bulwark.Engine.Kernels.Cpu.KernelIsa.Active}; batched runs: f16 KV cache on both sides");
            Console.WriteLine($"{"model",-6} {"dtype",-5} {"metric",-26} {"ours",10} {"llama.cpp",10} {"ours/llama",10}");
            foreach (var r in rows)
                Console.WriteLine($"{r.Model,-6} {r.DType,-5} {r.Metric,-26} {Format(r.Ours),10} {Format(r.Llama),10} {(double.IsNaN(r.Ours) || double.IsNaN(r.Llama) ? "n/a" : (r.Ours / r.Llama).ToString("F2", CultureInfo.InvariantCulture)),10}");
        }
        return 0;
    }

    private static string Format(double v) => double.IsNaN(v) ? "n/a" : v.ToString("F1", CultureInfo.InvariantCulture);

    private static double Median(List<EngineResult> results, Func<EngineResult, double> value)
    {
        var sorted = results.Select(value).Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>The file types this benchmark can make: ours written directly, and llama.cpp's quantizer's.</summary>
    internal static IEnumerable<string> FileTypes => DTypes.Keys.Concat(LlamaQuantized.Keys);

    /// <summary>
    /// Writes the synthetic model <paramref name="model"/> of shape <paramref name="spec"/> once per type, as
    /// <c>DIR/MODEL-DTYPE.gguf</c>; later runs reuse the file. K-quants and the other llama.cpp types are made by
    /// llama.cpp's own quantizer from the shape's f16 file.
    /// </summary>
    internal static string EnsureModel(string dir, string model, SyntheticModelSpec spec, string dtype)
    {
        var path = Path.Combine(dir, $"{model}-{dtype}.gguf");
        if (File.Exists(path)) return path;
        Directory.CreateDirectory(dir);
        var partial = path + ".partial";
        if (LlamaQuantized.TryGetValue(dtype, out var ftype))
        {
            var source = EnsureModel(dir, model, spec, "f16");
            Console.Error.WriteLine($"quantizing {source} to {path} with llama.cpp ...");
            NativeApi.llama_empty_call(); // LLamaModelQuantizeParams.Default() needs the library loaded first.
            if (!LLamaQuantizer.Quantize(source, partial, ftype, nthread: 2, allowRequantize: true, quantizeOutputTensor: true))
                throw new InvalidOperationException($"llama_model_quantize failed for {dtype}");
            File.Move(partial, path, overwrite: true);
            return path;
        }
        Console.Error.WriteLine($"writing {path} ...");
        SyntheticModel.WriteGguf(spec with { DType = DTypes.TryGetValue(dtype, out var type) ? type : throw new ArgumentException($"unknown type \"{dtype}\" (known: {string.Join(", ", FileTypes)})") }, partial);
        File.Move(partial, path, overwrite: true);
        return path;
    }

    private static EngineResult Child(string engine, string file, int threads, int prefill, int decode, string batch, int vocab, int session)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet")
            start.ArgumentList.Add(typeof(ModelBench).Assembly.Location);
        foreach (var arg in new[] { EngineRun.ChildCommand, "--engine", engine, "--file", file, "--threads", threads.ToString(),
                     "--prefill", prefill.ToString(), "--decode", decode.ToString(), "--vocab", vocab.ToString() })
            start.ArgumentList.Add(arg);
        if (session > 0)
        {
            start.ArgumentList.Add("--session");
            start.ArgumentList.Add(session.ToString());
        }
        if (batch.Length > 0)
        {
            start.ArgumentList.Add("--batch");
            start.ArgumentList.Add(batch);
        }
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{engine} run failed (exit {process.ExitCode}): {stderr.Result}");
        var line = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last(l => l.StartsWith('{'));
        return JsonSerializer.Deserialize<EngineResult>(line)!;
    }
}
