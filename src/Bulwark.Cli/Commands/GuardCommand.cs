using System.CommandLine;
using System.Text.Json;
using Bulwark.Cli.GuardTraining;
using Bulwark.Engine.Serving;
using Bulwark.Server.Backends.Embedded;
using Bulwark.Server.Guardrails.GuardModels;
using Bulwark.Server.Guardrails.Input;
using Bulwark.Server.Guardrails;
using Bulwark.Server.Requests;
using Bulwark.Server;

namespace Bulwark.Cli.Commands;

/// <summary>
/// <c>bulwark guard ...</c>: the input guard offline. <c>scan</c> prints a verdict, <c>eval</c>
/// measures the detector on labelled JSON Lines, <c>train</c> produces the model file (the
/// shipped one is <c>train --data ../shared/fixtures/prompt-injection/dev.jsonl</c>) and prints
/// its 5-fold cross-validated figures.
/// </summary>
internal static class GuardCommand
{
    public static Command Create()
    {
        var command = new Command("guard", "Scan text for prompt injection, evaluate the detector and train its model.");
        command.Subcommands.Add(Scan());
        command.Subcommands.Add(Eval());
        command.Subcommands.Add(Train());
        command.Subcommands.Add(CrossValidate());
        return command;
    }

    private static Option<ulong> SeedOption() => new("--seed")
    {
        Description = "Seed of the training shuffle (default: the shipped model's). The figures move with it: report several seeds when comparing recipes.",
        DefaultValueFactory = _ => new InjectionTrainingOptions().Seed,
    };

    private static Option<int> HiddenUnitsOption() => new("--hidden-units")
    {
        Description = $"ReLU units of a hidden layer trained jointly with the linear model, 0..{InjectionModel.MaxHiddenUnits} (default 0: the shipped linear model).",
        DefaultValueFactory = _ => 0,
    };

    /// <summary>The training options from the recipe flags; the defaults are the shipped recipe.</summary>
    private static InjectionTrainingOptions Recipe(ParseResult r, Option<ulong> seed, Option<int> hidden, int folds = 5)
    {
        var units = r.GetValue(hidden);
        if (units is < 0 or > InjectionModel.MaxHiddenUnits) throw new ArgumentException($"--hidden-units must be within 0..{InjectionModel.MaxHiddenUnits}; got {units}");
        return new InjectionTrainingOptions { Seed = r.GetValue(seed), HiddenUnits = units, Folds = folds };
    }

    private static Option<string?> ModelOption() => new("--model") { Description = "Model file made by 'guard train' (default: the one built into Bulwark)." };

    private static Option<string> PolicyOption() => new("--policy")
    {
        Description = "Policy whose threshold decides: flag or block (default: block).",
        DefaultValueFactory = _ => "block",
    };

    private static Command Scan()
    {
        var text = new Option<string?>("--text") { Description = "The text to scan." };
        var file = new Option<string?>("--file") { Description = "A file whose whole content is scanned (UTF-8)." };
        var policy = PolicyOption();
        var model = ModelOption();
        var json = new Option<bool>("--json") { Description = "Print the verdict as one JSON object." };
        var command = new Command("scan", "Sanitize and scan one text; prints rule ids, score and decision. Exit code 0 allow, 2 flag, 3 block.")
        {
            text, file, policy, model, json,
        };
        command.SetAction(r => Run(r, output =>
        {
            var t = r.GetValue(text);
            var f = r.GetValue(file);
            if ((t is null) == (f is null)) throw new ArgumentException("give exactly one of --text or --file");
            var input = InputSanitizer.Default.Sanitize(t ?? File.ReadAllText(f!));
            var p = ParsePolicy(r.GetValue(policy)!);
            var scanner = Scanner(r.GetValue(model));
            var verdict = scanner.Scan(input, p);
            if (r.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(new { rules = verdict.RuleIds, score = Math.Round(verdict.Score, 6), decision = verdict.Decision.Name(), policy = p.Name() }));
            }
            else
            {
                output.WriteLine($"decision: {verdict.Decision.Name()} (policy {p.Name()}, flag at {scanner.Model.FlagThreshold:F4}, block at {scanner.Model.BlockThreshold:F4})");
                output.WriteLine($"score:    {verdict.Score:F4}");
                output.WriteLine($"rules:    {(verdict.RuleIds.Count == 0 ? "(none)" : string.Join(", ", verdict.RuleIds))}");
            }
            return verdict.Decision switch { GuardDecision.Block => 3, GuardDecision.Flag => 2, _ => 0 };
        }));
        return command;
    }

    private static Command Eval()
    {
        var data = new Option<string>("--data") { Description = "JSON Lines file: {\"text\": ..., \"label\": 0|1} per line (optional \"source\").", Required = true };
        var policy = PolicyOption();
        var model = ModelOption();
        var json = new Option<bool>("--json") { Description = "Print one JSON object with n, precision, recall, f1, fpr (with --guard-model also errors and latency_ms p50/p95)." };
        var guardModel = new Option<string?>("--guard-model")
        {
            Description = "Score the texts with a guard model instead of the injection detector: a .gguf file or a Hugging Face folder, run on the embedded engine. A text counts as an attack when the default category policy makes its verdict block (block policy: unsafe) or at least flag (flag policy: unsafe or controversial).",
        };
        var guardFormat = new Option<string>("--guard-format")
        {
            Description = $"The guard model's prompt and verdict format: {string.Join(" or ", GuardModelFormat.ByName.Keys)} (default llama-guard-3).",
            DefaultValueFactory = _ => LlamaGuard3Format.Instance.Name,
        };
        var quantize = QuantizeOption.Create();
        var command = new Command("eval", "Measure precision, recall, F1 and false-positive rate on labelled texts at the configured threshold, or through a guard model (--guard-model), with its latency per check.")
        {
            data, policy, model, json, guardModel, guardFormat, quantize,
        };
        command.SetAction(r => Run(r, output =>
        {
            var texts = LabeledText.ReadJsonLines(r.GetValue(data)!);
            var p = ParsePolicy(r.GetValue(policy)!);
            if (r.GetValue(guardModel) is { } path)
            {
                var format = GuardModelFormat.Parse(r.GetValue(guardFormat), "--guard-format");
                var quantizeTo = Bulwark.Engine.Model.Loading.LoadQuantization.Parse(r.GetValue(quantize));
                GuardModelEvaluation result;
                try
                {
                    using var backend = EmbeddedModelLoader.Load(path, "guard", null, new EngineOptions(), quantizeTo);
                    result = GuardModelEvaluation.RunAsync(new GuardModelClassifier(backend, format), texts, p).GetAwaiter().GetResult();
                }
                catch (ServerConfigurationException e)
                {
                    throw new ArgumentException(string.Join("; ", e.Problems));
                }
                if (r.GetValue(json))
                {
                    output.WriteLine(JsonSerializer.Serialize(new
                    {
                        n = result.Evaluation.Overall.N,
                        precision = Math.Round(result.Evaluation.Overall.Precision, 6),
                        recall = Math.Round(result.Evaluation.Overall.Recall, 6),
                        f1 = Math.Round(result.Evaluation.Overall.F1, 6),
                        fpr = Math.Round(result.Evaluation.Overall.FalsePositiveRate, 6),
                        errors = result.Errors,
                        latency_ms = new { p50 = Math.Round(result.LatencyPercentile(0.50), 2), p95 = Math.Round(result.LatencyPercentile(0.95), 2) },
                    }));
                }
                else
                {
                    Print(output, $"guard model {Path.GetFileName(path)} ({format.Name}), policy {p.Name()}", result.Evaluation);
                    output.WriteLine(FormattableString.Invariant($"latency per check: p50 {result.LatencyPercentile(0.50):F1} ms, p95 {result.LatencyPercentile(0.95):F1} ms; {result.Errors} checks without a verdict (counted as not attacks)"));
                }
                return 0;
            }
            var evaluation = InjectionEvaluation.Run(Scanner(r.GetValue(model)), texts, p);
            if (r.GetValue(json)) output.WriteLine(Json(evaluation.Overall));
            else Print(output, $"policy {p.Name()}", evaluation);
            return 0;
        }));
        return command;
    }

    private static Command Train()
    {
        var data = new Option<string>("--data") { Description = "Training JSON Lines (text, label, source).", Required = true };
        var outFile = new Option<string>("--out") { Description = "Model file to write.", Required = true };
        var seed = SeedOption();
        var hidden = HiddenUnitsOption();
        var command = new Command("train", "Train the injection model (deterministic: the same texts give the same bytes); thresholds are calibrated on the out-of-fold scores of three 5-fold cross-validations (training seeds S, S+1, S+2) pooled; the first one's figures are printed.")
        {
            data, outFile, seed, hidden,
        };
        command.SetAction(r => Run(r, output =>
        {
            var texts = LabeledText.ReadJsonLines(r.GetValue(data)!);
            var (model, cv) = new InjectionTrainer(Recipe(r, seed, hidden)).Train(texts);
            var bytes = model.ToBytes();
            File.WriteAllBytes(r.GetValue(outFile)!, bytes);
            output.WriteLine($"trained on {texts.Count} texts ({texts.Count(t => t.IsAttack)} attacks): flag threshold {model.FlagThreshold:F4}, block threshold {model.BlockThreshold:F4}");
            Print(output, "cross-validated, flag policy", cv.Flag);
            Print(output, "cross-validated, block policy", cv.Block);
            output.WriteLine($"wrote {r.GetValue(outFile)} ({bytes.Length} bytes, sha256 {Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes))})");
            return 0;
        }));
        return command;
    }

    private static Command CrossValidate()
    {
        var data = new Option<string>("--data") { Description = "Labelled JSON Lines (text, label, source).", Required = true };
        var by = new Option<string>("--by")
        {
            Description = "What is held out: 'source' (default: leave one source out — each source scored by a model trained and calibrated on the other sources only; the honest figure for text from a source the model never saw) or 'fold' (nested k-fold over rows, stratified by source).",
            DefaultValueFactory = _ => "source",
        };
        var folds = new Option<int>("--folds") { Description = "Number of folds with --by fold, at least 2 (default 5).", DefaultValueFactory = _ => 5 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object: overall figures per policy and per source." };
        var seed = SeedOption();
        var hidden = HiddenUnitsOption();
        var flagFpr = new Option<double>("--flag-fpr")
        {
            Description = "False-positive share the flag threshold is calibrated to on held-out scores, within (0, 0.5] (default 0.035, under the 0.05 goal for margin).",
            DefaultValueFactory = _ => new InjectionTrainingOptions().FlagFpr,
        };
        var seeds = new Option<int>("--seeds")
        {
            Description = "Repeat the whole evaluation with this many training seeds (--seed, then 1, 2, ...) and print each run's overall figures and their mean; single runs of one recipe differ by about ±0.02 in recall (default 1: one run, with per-source figures).",
            DefaultValueFactory = _ => 1,
        };
        var command = new Command("cv", "Evaluate the training recipe honestly. By default leave one source out: each source is scored by a model trained on the other sources, at thresholds calibrated on inner leave-one-source-out scores of those sources only; figures pooled over all sources. --by fold: nested k-fold cross-validation (thresholds from inner cross-validations, three runs pooled; near-duplicate texts share a fold).")
        {
            data, by, folds, json, seed, hidden, flagFpr, seeds,
        };
        command.SetAction(r => Run(r, output =>
        {
            var texts = LabeledText.ReadJsonLines(r.GetValue(data)!);
            var bySource = r.GetValue(by) switch
            {
                "source" => true,
                "fold" => false,
                var other => throw new ArgumentException($"--by must be source or fold; got '{other}'"),
            };
            var k = r.GetValue(folds);
            if (k < 2) throw new ArgumentException($"--folds must be at least 2; got {k}");
            var runs = r.GetValue(seeds);
            if (runs is < 1 or > 100) throw new ArgumentException($"--seeds must be within 1..100; got {runs}");
            var fpr = r.GetValue(flagFpr);
            if (!(fpr is > 0 and <= 0.5)) throw new ArgumentException($"--flag-fpr must be within (0, 0.5]; got {fpr.ToString(System.Globalization.CultureInfo.InvariantCulture)}");
            var recipe = Recipe(r, seed, hidden, k) with { FlagFpr = fpr };
            var what = bySource
                ? $"leave-one-source-out evaluation of {texts.Count} texts ({texts.Count(t => t.IsAttack)} attacks, {texts.Select(t => t.Source).Distinct().Count()} sources)"
                : $"{k}-fold nested cross-validation of {texts.Count} texts ({texts.Count(t => t.IsAttack)} attacks)";
            if (runs > 1)
            {
                PrintSeeds(output, what, recipe, runs, r.GetValue(json), s =>
                {
                    var trainer = new InjectionTrainer(recipe with { Seed = s });
                    if (bySource)
                    {
                        var loso = trainer.HoldOutSources(texts);
                        return (loso.Flag, loso.Block);
                    }
                    var cv = trainer.NestedCrossValidate(texts);
                    return (cv.Flag, cv.Block);
                });
                return 0;
            }
            object Figures(InjectionEvaluation e) => new
            {
                overall = JsonSerializer.Deserialize<JsonElement>(Json(e.Overall)),
                sources = e.BySource.ToDictionary(p => p.Key, p => JsonSerializer.Deserialize<JsonElement>(Json(p.Value))),
            };
            string F4(float t) => t.ToString("F4", System.Globalization.CultureInfo.InvariantCulture);
            if (bySource)
            {
                var loso = new InjectionTrainer(recipe).HoldOutSources(texts);
                if (r.GetValue(json))
                {
                    output.WriteLine(JsonSerializer.Serialize(new
                    {
                        evaluation = "leave-one-source-out",
                        thresholds = loso.Sources.Select((s, i) => (s, i)).ToDictionary(x => x.s, x => new { flag = Math.Round(loso.FlagThresholds[x.i], 6), block = Math.Round(loso.BlockThresholds[x.i], 6) }),
                        flag = Figures(loso.Flag),
                        block = Figures(loso.Block),
                    }));
                    return 0;
                }
                output.WriteLine(what);
                output.WriteLine("thresholds (flag / block) calibrated without each source:");
                for (var i = 0; i < loso.Sources.Length; i++) output.WriteLine($"  {loso.Sources[i],-28} {F4(loso.FlagThresholds[i])} / {F4(loso.BlockThresholds[i])}");
                Print(output, "flag policy, pooled", loso.Flag);
                Print(output, "block policy, pooled", loso.Block);
                return 0;
            }
            var nested = new InjectionTrainer(recipe).NestedCrossValidate(texts);
            if (r.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(new { evaluation = "nested-k-fold", folds = k, flag = Figures(nested.Flag), block = Figures(nested.Block) }));
                return 0;
            }
            output.WriteLine(what);
            output.WriteLine($"flag thresholds per fold:  {string.Join(", ", nested.FlagThresholds.Select(F4))}");
            output.WriteLine($"block thresholds per fold: {string.Join(", ", nested.BlockThresholds.Select(F4))}");
            Print(output, "flag policy", nested.Flag);
            Print(output, "block policy", nested.Block);
            return 0;
        }));
        return command;
    }

    /// <summary>An evaluation repeated with <paramref name="runs"/> training seeds: the recipe's seed first, then 1, 2, ... (skipping it).</summary>
    private static void PrintSeeds(TextWriter output, string what, InjectionTrainingOptions recipe, int runs, bool json,
        Func<ulong, (InjectionEvaluation Flag, InjectionEvaluation Block)> evaluate)
    {
        var seeds = new List<ulong> { recipe.Seed };
        for (var s = 1ul; seeds.Count < runs; s++)
        {
            if (s != recipe.Seed) seeds.Add(s);
        }
        var results = seeds.Select(s => (Seed: s, Cv: evaluate(s))).ToList();
        double Mean(Func<(InjectionEvaluation Flag, InjectionEvaluation Block), double> figure) => results.Average(x => figure(x.Cv));
        if (json)
        {
            object Policy(Func<(InjectionEvaluation Flag, InjectionEvaluation Block), ClassifierMetrics> m) => new
            {
                recall = Math.Round(Mean(cv => m(cv).Recall), 6),
                fpr = Math.Round(Mean(cv => m(cv).FalsePositiveRate), 6),
            };
            output.WriteLine(JsonSerializer.Serialize(new
            {
                folds = recipe.Folds,
                runs = results.Select(x => new
                {
                    seed = x.Seed,
                    flag = JsonSerializer.Deserialize<JsonElement>(Json(x.Cv.Flag.Overall)),
                    block = JsonSerializer.Deserialize<JsonElement>(Json(x.Cv.Block.Overall)),
                }),
                mean = new { flag = Policy(cv => cv.Flag.Overall), block = Policy(cv => cv.Block.Overall) },
            }));
            return;
        }
        output.WriteLine($"{what}, {runs} training seeds");
        foreach (var (s, cv) in results)
        {
            output.WriteLine($"seed {s}:");
            output.WriteLine($"  flag policy:  {cv.Flag.Overall}");
            output.WriteLine($"  block policy: {cv.Block.Overall}");
        }
        string F(double x) => x.ToString("F3", System.Globalization.CultureInfo.InvariantCulture);
        string Range(Func<(InjectionEvaluation Flag, InjectionEvaluation Block), double> figure) => $"{F(results.Min(x => figure(x.Cv)))}–{F(results.Max(x => figure(x.Cv)))}";
        output.WriteLine($"mean of {runs} seeds: flag recall {F(Mean(cv => cv.Flag.Overall.Recall))} (range {Range(cv => cv.Flag.Overall.Recall)}) at FPR {F(Mean(cv => cv.Flag.Overall.FalsePositiveRate))}; " +
            $"block recall {F(Mean(cv => cv.Block.Overall.Recall))} (range {Range(cv => cv.Block.Overall.Recall)}) at FPR {F(Mean(cv => cv.Block.Overall.FalsePositiveRate))}");
    }

    private static InjectionScanner Scanner(string? modelPath) =>
        modelPath is null ? InjectionScanner.Default : new InjectionScanner(InjectionModel.Load(modelPath));

    private static GuardPolicy ParsePolicy(string value)
    {
        var policy = GuardPolicyNames.Parse(value, "--policy");
        return policy != GuardPolicy.Off ? policy : throw new FormatException("--policy must be flag or block here; got 'off'");
    }

    internal static string Json(ClassifierMetrics m) => JsonSerializer.Serialize(new
    {
        n = m.N,
        precision = Math.Round(m.Precision, 6),
        recall = Math.Round(m.Recall, 6),
        f1 = Math.Round(m.F1, 6),
        fpr = Math.Round(m.FalsePositiveRate, 6),
    });

    private static void Print(TextWriter output, string title, InjectionEvaluation evaluation)
    {
        output.WriteLine($"{title}: {evaluation.Overall}");
        foreach (var (source, m) in evaluation.BySource)
            output.WriteLine($"  {(source.Length == 0 ? "(no source)" : source),-28} {m}");
    }

    /// <summary>Runs an action writing to the invocation's output (the console, or a test's writer); user errors exit 1 with one line.</summary>
    private static int Run(ParseResult result, Func<TextWriter, int> action)
    {
        var config = result.InvocationConfiguration;
        try
        {
            return action(config.Output);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or IOException or InvalidDataException or UnauthorizedAccessException)
        {
            config.Error.WriteLine("error: " + e.Message);
            return 1;
        }
    }
}
