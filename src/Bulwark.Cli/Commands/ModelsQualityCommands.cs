using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Bulwark.Cli.Terminal;
using Bulwark.Engine.Conversion;
using Bulwark.Engine.Formats;
using Bulwark.Server;
using Bulwark.Server.Registry;

namespace Bulwark.Cli.Commands;

/// <summary>
/// The quantization verbs of <c>bulwark models</c>: quantize a version into a new one, check a
/// version against its parent (the quantization gate), and override the gate for one version.
/// </summary>
internal static class ModelsQualityCommands
{
    public static IEnumerable<Command> All() => [Quantize(), Convert(), Check(), Override()];

    private static Command Quantize()
    {
        var dataDir = CommonOptions.DataDir();
        var name = new Argument<string>("name") { Description = "Registered model name." };
        var to = new Option<string>("--to") { Description = "Target type: q8_0 or q4_0.", Required = true };
        var version = new Option<string?>("--version") { Description = "Version to quantize (default: the serving one): an F32, F16 or BF16 GGUF, or a Hugging Face folder (converted to GGUF first)." };
        var noCheck = new Option<bool>("--no-check") { Description = "Do not check the new version against its parent now (it cannot serve until checked or overridden)." };
        var use = new Option<bool>("--use") { Description = "Make the new version the serving one if its check passes." };
        var safety = new ModelsSafetyCheck();
        var command = new Command("quantize", "Write a quantized GGUF copy of a version as a new version (parent linked), then check it against its parent (logits, then safety).")
            { name, to, version, noCheck, use, dataDir };
        foreach (var option in safety.Options) command.Options.Add(option);
        command.SetAction(r => ModelsRegistryCommands.Run(async () =>
        {
            var data = DataDirectory.Resolve(r.GetValue(dataDir)).EnsureCreated();
            var registry = ModelRegistry.Open(data);
            var n = r.GetValue(name)!;
            var target = r.GetValue(to)!.ToLowerInvariant() switch
            {
                "q8_0" => GgmlType.Q8_0,
                "q4_0" => GgmlType.Q4_0,
                var other => throw new RegistryException($"--to {other}: supported targets are q8_0 and q4_0"),
            };
            var from = r.GetValue(version) ?? registry.State(n).Current ?? throw new RegistryException($"model '{n}' has no versions");
            var safetyOptions = r.GetValue(noCheck) ? null : safety.Read(r); // a bad probe file is refused before any work
            var (manifest, path) = await registry.VerifiedPathAsync(n, from, requireSignature: false);

            var temp = Path.Combine(registry.Root, $".quantize-{Guid.NewGuid():N}", $"{n}-{r.GetValue(to)!.ToLowerInvariant()}.gguf");
            Directory.CreateDirectory(Path.GetDirectoryName(temp)!);
            try
            {
                try
                {
                    if (manifest.Format != "gguf")
                    {
                        // A Hugging Face folder is converted to GGUF first (llama.cpp's layout), then quantized like any GGUF.
                        var converted = Path.Combine(Path.GetDirectoryName(temp)!, "converted.gguf");
                        var converting = new ProgressBar("converting to GGUF", manifest.TotalBytes);
                        HuggingFaceToGguf.Convert(path, converted, converting);
                        converting.Finish();
                        path = converted;
                    }
                    var bar = new ProgressBar($"quantizing to {target}", new FileInfo(path).Length);
                    GgufRequantizer.Requantize(path, temp, target, bar);
                    bar.Finish();
                }
                catch (ModelFormatException e)
                {
                    throw new RegistryException(e.Message);
                }
                var hashing = new ProgressBar("hashing", new FileInfo(temp).Length);
                var added = await registry.AddAsync(n, temp, new AddOptions
                {
                    Parent = from,
                    Quantization = target.ToString().ToLowerInvariant(),
                    Architecture = manifest.Architecture,
                    Source = new ManifestSource("version", $"{n}:{from}", null),
                }, hashing);
                hashing.Finish();
                Console.WriteLine($"added {n} {added.Version}: {added.Quantization} of {from}, {added.TotalBytes} bytes");
                await CliAudit.WriteAsync(data, "model.quantized", $"{n}:{added.Version}", $"{added.Quantization} of {from}");
                if (r.GetValue(noCheck))
                {
                    Console.WriteLine($"not checked: it serves only after `bulwark models check {n} --version {added.Version} --against {from}`");
                    return 0;
                }
                var passed = await RunCheck(registry, data, n, added.Version, from, new GateThresholds(), new ProbeOptions(), safetyOptions, json: false);
                if (passed && r.GetValue(use))
                {
                    registry.SetCurrent(n, added.Version);
                    await CliAudit.WriteAsync(data, "model.current", $"{n}:{added.Version}", "after quantize");
                    Console.WriteLine($"{n}: now serving {added.Version}");
                }
                return passed ? 0 : 1;
            }
            finally
            {
                Directory.Delete(Path.GetDirectoryName(temp)!, recursive: true);
            }
        }));
        return command;
    }

    private static Command Convert()
    {
        var dataDir = CommonOptions.DataDir();
        var name = new Argument<string>("name") { Description = "Registered model name." };
        var version = new Option<string?>("--version") { Description = "The safetensors (Hugging Face folder) version to convert (default: the serving one)." };
        var command = new Command("convert", "Write a GGUF copy of a safetensors version as a new version (parent linked; the weights keep their type).") { name, version, dataDir };
        command.SetAction(r => ModelsRegistryCommands.Run(async () =>
        {
            var data = DataDirectory.Resolve(r.GetValue(dataDir)).EnsureCreated();
            var registry = ModelRegistry.Open(data);
            var n = r.GetValue(name)!;
            var from = r.GetValue(version) ?? registry.State(n).Current ?? throw new RegistryException($"model '{n}' has no versions");
            var (manifest, path) = await registry.VerifiedPathAsync(n, from, requireSignature: false);
            if (manifest.Format == "gguf") throw new RegistryException($"model '{n}' version {from} is already GGUF");
            var temp = Path.Combine(registry.Root, $".convert-{Guid.NewGuid():N}", $"{n}.gguf");
            try
            {
                var bar = new ProgressBar("converting to GGUF", manifest.TotalBytes);
                try
                {
                    HuggingFaceToGguf.Convert(path, temp, bar);
                }
                catch (ModelFormatException e)
                {
                    throw new RegistryException(e.Message);
                }
                bar.Finish();
                var added = await registry.AddAsync(n, temp, new AddOptions
                {
                    Parent = from,
                    Architecture = manifest.Architecture,
                    Source = new ManifestSource("version", $"{n}:{from}", null),
                });
                Console.WriteLine($"added {n} {added.Version}: GGUF of {from}, {added.TotalBytes} bytes");
                await CliAudit.WriteAsync(data, "model.converted", $"{n}:{added.Version}", $"GGUF of {from}");
                return 0;
            }
            finally
            {
                var folder = Path.GetDirectoryName(temp)!;
                if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
            }
        }));
        return command;
    }

    private static Command Check()
    {
        var dataDir = CommonOptions.DataDir();
        var name = new Argument<string>("name") { Description = "Registered model name." };
        var version = new Option<string>("--version") { Description = "The version to check (e.g. the quantized one).", Required = true };
        var against = new Option<string?>("--against") { Description = "The reference version (default: the version's parent)." };
        var probes = new Option<string?>("--probes") { Description = "A text file of probe prompts, one per line (default: a built-in set of 8)." };
        var continuation = new Option<int>("--continuation") { Description = "Greedy tokens of the reference compared after each probe.", DefaultValueFactory = _ => 32 };
        var minCosine = new Option<double>("--min-cosine") { Description = "Lowest acceptable mean logit cosine.", DefaultValueFactory = _ => new GateThresholds().MinMeanCosine };
        var minTop1 = new Option<double>("--min-top1") { Description = "Lowest acceptable top-1 agreement (0..1).", DefaultValueFactory = _ => new GateThresholds().MinTop1Agreement };
        var maxKl = new Option<double>("--max-kl") { Description = "Highest acceptable mean KL divergence (nats).", DefaultValueFactory = _ => new GateThresholds().MaxMeanKl };
        var json = new Option<bool>("--json") { Description = "Print the result as one JSON object." };
        var safety = new ModelsSafetyCheck();
        var command = new Command("check", "Compare a version with its parent: logits on a probe set (cosine, top-1 agreement, KL), then safety behaviour on safety probes (refusal rates); a version that fails either is marked and will not serve.")
            { name, version, against, probes, continuation, minCosine, minTop1, maxKl, json, dataDir };
        foreach (var option in safety.Options) command.Options.Add(option);
        command.SetAction(r => ModelsRegistryCommands.Run(async () =>
        {
            var data = DataDirectory.Resolve(r.GetValue(dataDir));
            var registry = ModelRegistry.Open(data);
            var n = r.GetValue(name)!;
            var v = r.GetValue(version)!;
            var reference = r.GetValue(against) ?? registry.Manifest(n, v).Parent
                ?? throw new RegistryException($"model '{n}' version {v} has no parent; name the reference with --against");
            var texts = r.GetValue(probes) is { } file ? ReadProbes(file) : [];
            var thresholds = new GateThresholds { MinMeanCosine = r.GetValue(minCosine), MinTop1Agreement = r.GetValue(minTop1), MaxMeanKl = r.GetValue(maxKl) };
            try
            {
                thresholds.Validate();
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw new RegistryException(e.Message);
            }
            var passed = await RunCheck(registry, data, n, v, reference, thresholds,
                new ProbeOptions { Texts = texts, ContinuationTokens = r.GetValue(continuation) }, safety.Read(r), r.GetValue(json));
            return passed ? 0 : 1;
        }));
        return command;
    }

    private static Command Override()
    {
        var dataDir = CommonOptions.DataDir();
        var name = new Argument<string>("name") { Description = "Registered model name." };
        var version = new Option<string>("--version") { Description = "The version to allow.", Required = true };
        var reason = new Option<string>("--reason") { Description = "Why it may serve despite its check (kept and audited).", Required = true };
        var command = new Command("override", "Allow a quantized version that failed (or skipped) its check to serve; recorded with the reason and audited.")
            { name, version, reason, dataDir };
        command.SetAction(r => ModelsRegistryCommands.Run(async () =>
        {
            var data = DataDirectory.Resolve(r.GetValue(dataDir));
            var n = r.GetValue(name)!;
            var entry = new QuantizationGate(ModelRegistry.Open(data), TimeProvider.System).Override(n, r.GetValue(version)!, r.GetValue(reason)!);
            await CliAudit.WriteAsync(data, "model.gate_override", $"{n}:{entry.Version}", entry.Reason);
            Console.WriteLine($"{n} {entry.Version}: the quantization gate is overridden ({entry.Reason})");
            return 0;
        }));
        return command;
    }

    /// <summary>The logit check, then (unless skipped) the safety check; true when the version may now serve.</summary>
    private static async Task<bool> RunCheck(ModelRegistry registry, DataDirectory data, string name, string version, string against,
        GateThresholds thresholds, ProbeOptions probes, SafetyCheckOptions? safetyOptions, bool json)
    {
        ProgressBar? bar = null;
        var record = await QuantizationCheck.RunAsync(registry, name, version, against, thresholds, probes, TimeProvider.System,
            new Progress<(int Done, int Total)>(p => (bar ??= new ProgressBar("checking probes", p.Total, "probes")).Report(p.Done)));
        bar?.Finish();
        await CliAudit.WriteAsync(data, "model.checked", $"{name}:{version}",
            $"against {against}: {(record.Passed ? "passed" : "failed: " + string.Join("; ", record.Failures))}");
        SafetyCheckRecord? safety = null;
        if (safetyOptions is not null)
        {
            safety = await ModelsSafetyCheck.RunAsync(registry, name, version, against, safetyOptions);
            await CliAudit.WriteAsync(data, "model.safety_checked", $"{name}:{version}", ModelsSafetyCheck.AuditDetail(safety, against));
        }
        // Without a safety run now, an earlier failed safety check still holds the version back (only an override passes it).
        var heldBySafety = safety is null && new QuantizationGate(registry, TimeProvider.System).Safety(name, version) is { Passed: false } earlier ? earlier : null;
        var passed = record.Passed && (safety?.Passed ?? true) && heldBySafety is null;
        var f = record.Figures;
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                name, version, against, passed, failures = record.Failures.Concat(safety?.Failures ?? heldBySafety?.Failures ?? []),
                sequences = f.Sequences, positions = f.Positions,
                mean_cosine = f.MeanCosine, min_cosine = f.MinCosine, top1_agreement = f.Top1Agreement, mean_kl = f.MeanKl, max_kl = f.MaxKl,
                safety = ModelsSafetyCheck.Json(safety ?? heldBySafety),
                safety_status = safetyOptions is null ? (heldBySafety is null ? "skipped" : "skipped; an earlier safety check failed") : safety is null ? "not a chat model" : safety.Passed ? "passed" : "failed",
            }));
        }
        else
        {
            var c = CultureInfo.InvariantCulture;
            Console.WriteLine($"{name} {version} against {against}: {f.Sequences} probes, {f.Positions} positions");
            Console.WriteLine(string.Create(c, $"  logit cosine   mean {f.MeanCosine:F5}  min {f.MinCosine:F5}   (threshold ≥ {thresholds.MinMeanCosine})"));
            Console.WriteLine(string.Create(c, $"  top-1 agreement     {f.Top1Agreement:P2}               (threshold ≥ {thresholds.MinTop1Agreement:P0})"));
            Console.WriteLine(string.Create(c, $"  KL divergence  mean {f.MeanKl:F5}  max {f.MaxKl:F5}   (threshold ≤ {thresholds.MaxMeanKl})"));
            Console.WriteLine(record.Passed ? "  logits: PASSED" : $"  logits: FAILED ({string.Join("; ", record.Failures)})");
            if (safetyOptions is not null) ModelsSafetyCheck.Print(safety, version, against);
            else if (heldBySafety is not null) Console.WriteLine($"  safety: not run now; the check of {heldBySafety.CheckedAt:u} FAILED ({string.Join("; ", heldBySafety.Failures)})");
            else Console.WriteLine("  safety: not run (--no-safety)");
            Console.WriteLine(passed
                ? $"  PASSED: {version} may serve"
                : $"  FAILED: {version} will not serve unless overridden (bulwark models override {name} --version {version} --reason \"...\")");
        }
        return passed;
    }

    private static List<string> ReadProbes(string file)
    {
        if (!File.Exists(file)) throw new RegistryException($"{file}: no such probe file");
        if (new FileInfo(file).Length > 4 << 20) throw new RegistryException($"{file}: larger than 4 MB");
        var lines = File.ReadAllLines(file).Where(l => l.Trim().Length > 0).ToList();
        if (lines.Count == 0) throw new RegistryException($"{file}: holds no probe lines");
        return lines;
    }
}
