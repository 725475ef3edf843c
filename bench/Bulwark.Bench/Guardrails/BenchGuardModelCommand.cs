using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Synthesis;
using Bulwark.Server.Backends.Embedded;
using Bulwark.Server.Guardrails.GuardModels;

namespace Bulwark.Bench.Guardrails;

/// <summary>
/// <c>bench/run guard-model</c>: the latency of one guard-model check (the guard stage's cost per request, input or
/// output) on synthetic models of the guard families' shapes: a Qwen3-0.6B shape (Qwen3Guard-Gen-0.6B) with the
/// Qwen3Guard format and a TinyLlama 1.1B shape (the size of Llama Guard 3 1B) with the Llama Guard 3 format, at
/// Q8_0 (written by our generator) and Q4_K_M (llama.cpp's own quantizer, through LLamaSharp, from the shape's f16
/// file). Each check is a different prompt of typical length, decoded under the format's grammar, as the server
/// runs it; the engine's prefix cache is on as when serving, so the format's text before the user's is computed
/// once. Random weights: the verdicts mean nothing, the cost is a real model's of that shape.
/// </summary>
internal static class BenchGuardModelCommand
{
    /// <summary>
    /// The shapes. Synthetic vocabularies are cut from GPT-2's (at most 50,259 tokens), so the Qwen3 shape has 50,259
    /// tokens instead of 151,936, and its head dimension is dim / heads (64; Qwen3-0.6B's is 128): about 400M
    /// parameters instead of 596M. TinyLlama's shape is exact (its 32,000-token vocabulary is GPT-2's first ranks here).
    /// </summary>
    private static readonly Dictionary<string, (SyntheticModelSpec Spec, GuardModelFormat Format)> Shapes = new()
    {
        ["qwen3-0.6b"] = (new SyntheticModelSpec
        {
            Architecture = "qwen3", Layers = 28, Dim = 1024, Heads = 16, KvHeads = 8, FeedForward = 3072, Vocab = SyntheticVocabulary.MaximumSize,
            Context = 4096, Seed = 23, TiedOutput = true, ChatTemplate = SyntheticModel.ChatMlTemplate, RopeTheta = 1_000_000f, RmsNormEpsilon = 1e-6f,
        }, Qwen3GuardFormat.Instance),
        ["tinyllama-1.1b"] = (new SyntheticModelSpec
        {
            Architecture = "llama", Layers = 22, Dim = 2048, Heads = 32, KvHeads = 4, FeedForward = 5632, Vocab = 32000,
            Context = 4096, Seed = 24, ChatTemplate = SyntheticModel.ChatMlTemplate,
        }, LlamaGuard3Format.Instance),
    };

    public static Command Create()
    {
        var models = new Option<string>("--models") { Description = $"Shapes, comma-separated: {string.Join(", ", Shapes.Keys)}.", DefaultValueFactory = _ => string.Join(",", Shapes.Keys) };
        var dtypes = new Option<string>("--dtypes") { Description = "File types, comma-separated (q8_0, q4_0, f16 ours; q4_k_m and other k-quants by llama.cpp's quantizer).", DefaultValueFactory = _ => "q8_0,q4_k_m" };
        var checks = new Option<int>("--checks") { Description = "Timed checks per model and type (1..1000), after one warm-up check.", DefaultValueFactory = _ => 20 };
        var response = new Option<bool>("--response") { Description = "Judge an answer (output moderation) instead of a prompt (input)." };
        var dir = new Option<string>("--dir") { Description = "Where the synthetic models are written and reused.", DefaultValueFactory = _ => Path.Combine(Path.GetTempPath(), "bulwark-bench") };
        var command = new Command("guard-model", "Measure the latency of one guard-model check (p50/p95) on 0.6B and 1.1B synthetic models at Q8_0 and Q4_K_M.")
        {
            models, dtypes, checks, response, dir,
        };
        command.SetAction(r =>
        {
            var n = r.GetValue(checks);
            if (n is < 1 or > 1000) { Console.Error.WriteLine($"error: --checks must be between 1 and 1000; got {n}"); return 1; }
            var shapes = r.GetValue(models)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var types = r.GetValue(dtypes)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var m in shapes)
                if (!Shapes.ContainsKey(m)) { Console.Error.WriteLine($"error: --models: unknown shape \"{m}\" (known: {string.Join(", ", Shapes.Keys)})"); return 1; }
            foreach (var t in types)
                if (!ModelBench.FileTypes.Contains(t)) { Console.Error.WriteLine($"error: --dtypes: unknown type \"{t}\" (known: {string.Join(", ", ModelBench.FileTypes)})"); return 1; }
            var judgeAnswers = r.GetValue(response);
            Console.WriteLine($"guard-model check latency, {(judgeAnswers ? "response" : "query")} mode, {n} checks after 1 warm-up, {Environment.ProcessorCount} cores, " +
                $"kernels {Bulwark.Engine.Kernels.Cpu.KernelIsa.Active}; prefix cache on");
            if (File.Exists("/proc/loadavg")) Console.WriteLine($"load average at start: {File.ReadAllText("/proc/loadavg").Trim()}");
            Console.WriteLine("wall: elapsed time per check; cpu: the process's CPU time per check (all threads), which a busy machine inflates less");
            Console.WriteLine($"{"model",-15} {"dtype",-7} {"format",-14} {"file MiB",9} {"prompt tok",10} {"p50 ms",8} {"p95 ms",8} {"mean ms",8} {"max ms",8} {"cpu p50",8} {"cpu p95",8}");
            foreach (var shape in shapes)
            foreach (var type in types)
            {
                var (spec, format) = Shapes[shape];
                var file = ModelBench.EnsureModel(r.GetValue(dir)!, shape, spec, type);
                using var backend = EmbeddedModelLoader.Load(file, "guard", null, new EngineOptions());
                var classifier = new GuardModelClassifier(backend, format);
                var times = new List<double>(n);
                var cpu = new List<double>(n);
                using var self = Process.GetCurrentProcess();
                var promptTokens = 0L;
                for (var i = 0; i <= n; i++)
                {
                    var (user, answer) = Conversation(i, judgeAnswers);
                    if (i > 0) promptTokens += GuardModelClassifier.Tokenize(backend.Tokenizer, format.Render(user, answer)).Length;
                    self.Refresh();
                    var cpuBefore = self.TotalProcessorTime;
                    var started = Stopwatch.GetTimestamp();
                    classifier.ClassifyAsync(user, answer).GetAwaiter().GetResult();
                    var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                    self.Refresh();
                    Console.Error.WriteLine($"  {shape} {type} check {i}{(i == 0 ? " (warm-up)" : "")}: {elapsed:F0} ms");
                    if (i == 0) continue;
                    times.Add(elapsed);
                    cpu.Add((self.TotalProcessorTime - cpuBefore).TotalMilliseconds);
                }
                times.Sort();
                cpu.Sort();
                Console.WriteLine($"{shape,-15} {type,-7} {format.Name,-14} {new FileInfo(file).Length / (1024.0 * 1024),9:F0} {promptTokens / (double)n,10:F0} " +
                    $"{Quantile(times, 0.5),8:F0} {Quantile(times, 0.95),8:F0} {times.Average(),8:F0} {times[^1],8:F0} {Quantile(cpu, 0.5),8:F0} {Quantile(cpu, 0.95),8:F0}");
            }
            return 0;
        });
        return command;
    }

    /// <summary>The nearest-rank quantile of sorted samples.</summary>
    private static double Quantile(List<double> sorted, double q) => sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Count) - 1, 0, sorted.Count - 1)];

    private static readonly string[] Openings =
    [
        "I run a small bakery and want to", "My team is migrating a legacy billing service and we need to", "As a high-school chemistry teacher I would like to",
        "I'm planning a two-week trip through Portugal in April and want to", "Our support desk gets hundreds of e-mails a day and I need to",
        "I am writing a short story about a lighthouse keeper and would like to", "For a university course on networks I have to",
    ];

    private static readonly string[] Tasks =
    [
        "write a friendly announcement of our new opening hours that explains the change without sounding apologetic",
        "outline a step-by-step plan with risks, a rollback strategy and a rough timeline for each phase",
        "prepare a safe classroom demonstration of an exothermic reaction with a list of materials and precautions",
        "compare three itineraries by cost, travel time and how much walking each one involves",
        "sort incoming messages into categories and draft polite template replies for the five most common ones",
        "describe the keeper's daily routine in vivid detail and end the chapter with a hint of a coming storm",
        "explain how TCP congestion control reacts to packet loss, with a small worked example and a diagram in words",
    ];

    /// <summary>Check <paramref name="i"/>'s conversation: a user prompt of typical length (~60 tokens) and, in response mode, an answer (~150 tokens); each different.</summary>
    private static (string User, string? Answer) Conversation(int i, bool withAnswer)
    {
        var user = $"{Openings[i % Openings.Length]} {Tasks[i / Openings.Length % Tasks.Length]}. Please keep it under 300 words, use plain language, " +
            $"and tell me what information you would still need from me (request {i.ToString(CultureInfo.InvariantCulture)}).";
        if (!withAnswer) return (user, null);
        var answer = $"Here is a first draft. {Tasks[(i + 3) % Tasks.Length]}: start with the goal, then list what is needed, then go through the steps one by one. " +
            "First, gather everything you need and check it against the list. Second, set aside enough time, because rushing is where most mistakes happen. " +
            "Third, write down what you observe as you go, so the next attempt can be better. Finally, review the result with someone you trust and adjust. " +
            $"To tailor this further I would need to know your budget, your deadline and who the audience is (draft {i.ToString(CultureInfo.InvariantCulture)}).";
        return (user, answer);
    }
}
