using System.CommandLine;
using System.Text.Json;
using Bulwark.Cli.Terminal;
using Bulwark.Server;
using Bulwark.Server.Registry;

namespace Bulwark.Cli.Commands;

/// <summary>
/// The registry verbs of <c>bulwark models</c>: keygen, add, verify, list, use, rollback, pull.
/// Each acts on the data directory's registry, the same one <c>serve --model NAME</c> reads.
/// </summary>
internal static class ModelsRegistryCommands
{
    public static IEnumerable<Command> All() => [Keygen(), Add(), Verify(), List(), Use(), Rollback(), Pull()];

    private static Command Keygen()
    {
        var dataDir = CommonOptions.DataDir();
        var command = new Command("keygen", "Create an Ed25519 key for signing manifests; its public key is trusted by this data directory.") { dataDir };
        command.SetAction(r => Run(() =>
        {
            var keys = ModelRegistry.Open(DataDirectory.Resolve(r.GetValue(dataDir)).EnsureCreated()).Keys;
            var id = keys.Generate();
            Console.WriteLine($"created signing key {id}");
            Console.WriteLine($"  private: {Path.Combine(keys.Folder, id + ".key")} (keep it secret; never commit it)");
            Console.WriteLine($"  public:  {Path.Combine(keys.TrustedFolder, id + ".pub")} (copy it into trusted/ on every server that should accept it)");
            return Task.FromResult(0);
        }));
        return command;
    }

    private static Command Add()
    {
        var dataDir = CommonOptions.DataDir();
        var name = new Argument<string>("name") { Description = "Model name (a-z 0-9 . _ -)." };
        var from = new Option<string>("--from") { Description = "A .gguf file or a Hugging Face folder with .safetensors weights.", Required = true };
        var sign = new Option<bool>("--sign") { Description = "Sign the manifest with this data directory's signing key." };
        var key = new Option<string?>("--key") { Description = "Which signing key to use when there are several." };
        var use = new Option<bool>("--use") { Description = "Make the new version the serving one (the first version always is)." };
        var json = new Option<bool>("--json") { Description = "Print the manifest as JSON." };
        var command = new Command("add", "Import a local model file or folder as a new version, computing its manifest.") { name, from, sign, key, use, json, dataDir };
        command.SetAction(r => Run(async () =>
        {
            var registry = ModelRegistry.Open(DataDirectory.Resolve(r.GetValue(dataDir)).EnsureCreated());
            var source = r.GetValue(from)!;
            var bar = new ProgressBar("hashing", Bulwark.Server.Models.ModelMemory.OnDisk(source));
            var manifest = await registry.AddAsync(r.GetValue(name)!, source,
                new AddOptions { Sign = r.GetValue(sign), KeyId = r.GetValue(key), MakeCurrent = r.GetValue(use) }, bar);
            bar.Finish();
            if (r.GetValue(json)) Console.WriteLine(System.Text.Encoding.UTF8.GetString(manifest.ToJsonBytes()));
            else Console.WriteLine($"added {manifest.Name} {manifest.Version}: {manifest.Format}, {manifest.Files.Count} file(s), {manifest.TotalBytes} bytes{(manifest.Signature is null ? "" : $", signed by {manifest.Signature.KeyId}")}");
            return 0;
        }));
        return command;
    }

    private static Command Verify()
    {
        var dataDir = CommonOptions.DataDir();
        var name = new Argument<string>("name");
        var version = new Option<string?>("--version") { Description = "Version to verify (default: the serving one)." };
        var requireSignature = new Option<bool>("--require-signature") { Description = "Fail when the manifest is not signed by a trusted key." };
        var command = new Command("verify", "Re-hash a version's files against its manifest; exits 1 on any mismatch.") { name, version, requireSignature, dataDir };
        command.SetAction(r => Run(async () =>
        {
            var registry = ModelRegistry.Open(DataDirectory.Resolve(r.GetValue(dataDir)));
            var n = r.GetValue(name)!;
            var v = r.GetValue(version) ?? registry.State(n).Current ?? throw new RegistryException($"model '{n}' has no versions");
            var bar = new ProgressBar("verifying", registry.Manifest(n, v).TotalBytes);
            var report = await registry.VerifyAsync(n, v, r.GetValue(requireSignature), bar);
            bar.Finish();
            if (report.Ok)
            {
                Console.WriteLine($"{n} {v}: OK ({report.BytesHashed} bytes hashed)");
                return 0;
            }
            Console.Error.WriteLine($"{n} {v}: FAILED");
            foreach (var p in report.Problems) Console.Error.WriteLine("  " + p);
            return 1;
        }));
        return command;
    }

    private static Command List()
    {
        var dataDir = CommonOptions.DataDir();
        var json = new Option<bool>("--json") { Description = "Print an array of {name, version, current, format, ...} objects." };
        var command = new Command("list", "List registered models and their versions.") { json, dataDir };
        command.SetAction(r => Run(() =>
        {
            var registry = ModelRegistry.Open(DataDirectory.Resolve(r.GetValue(dataDir)));
            var gate = new QuantizationGate(registry, TimeProvider.System);
            var rows = registry.Names().SelectMany(n =>
            {
                var current = registry.State(n).Current;
                return registry.Versions(n).Select(m => (Manifest: m, Current: m.Version == current,
                    Gate: gate.Status(n, m).Status, Safety: gate.Safety(n, m.Version)));
            }).ToList();
            if (r.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(rows.Select(x => new
                {
                    name = x.Manifest.Name,
                    version = x.Manifest.Version,
                    current = x.Current,
                    format = x.Manifest.Format,
                    architecture = x.Manifest.Architecture,
                    quantization = x.Manifest.Quantization,
                    parent = x.Manifest.Parent,
                    bytes = x.Manifest.TotalBytes,
                    signed_by = x.Manifest.Signature?.KeyId,
                    source = x.Manifest.Source.Location,
                    revision = x.Manifest.Source.Revision,
                    created = x.Manifest.Created,
                    gate = JsonNamingPolicy.SnakeCaseLower.ConvertName(x.Gate.ToString()),
                    safety = x.Safety is { } safety ? new
                    {
                        passed = safety.Passed,
                        against = safety.Against,
                        judge = safety.Judge,
                        refusal_only = safety.RefusalOnly,
                        refusal_rate = safety.Figures.Candidate.RefusalRate.Estimate,
                        reference_refusal_rate = safety.Figures.Reference.RefusalRate.Estimate,
                        refusal_drop_lower = safety.Figures.RefusalDrop.Difference.Lower,
                        checked_at = safety.CheckedAt,
                    } : null,
                })));
                return Task.FromResult(0);
            }
            if (rows.Count == 0) Console.WriteLine("no models registered (add one with: bulwark models add NAME --from PATH)");
            foreach (var (m, current, status, safety) in rows)
                Console.WriteLine($"{(current ? "*" : " ")} {m.Name,-24} {m.Version,-5} {m.Format,-12} {m.Quantization ?? "-",-6} {m.TotalBytes,14} bytes  {(m.Signature is null ? "unsigned" : "signed:" + m.Signature.KeyId)}  {m.Source.Location}{(m.Source.Revision is null ? "" : "@" + m.Source.Revision[..Math.Min(12, m.Source.Revision.Length)])}{GateText(status, safety)}");
            return Task.FromResult(0);
        }));
        return command;
    }

    private static Command Use()
    {
        var dataDir = CommonOptions.DataDir();
        var name = new Argument<string>("name");
        var version = new Argument<string>("version");
        var url = ModelsServerCommands.UrlOption(required: false);
        var command = new Command("use", "Make a version the serving one (the current one goes on the roll-back history); with --url, also swap it into that running server.") { name, version, dataDir, url };
        command.SetAction((r, ct) => r.GetValue(url) is { } server ? ModelsServerCommands.UseAsync(r, server, r.GetValue(name)!, r.GetValue(version)!, ct) : Run(async () =>
        {
            var data = DataDirectory.Resolve(r.GetValue(dataDir));
            var registry = ModelRegistry.Open(data);
            var (n, v) = (r.GetValue(name)!, r.GetValue(version)!);
            // A version the quantization gate holds back cannot become the serving one.
            new QuantizationGate(registry, TimeProvider.System).EnsureServable(n, registry.Manifest(n, v));
            var state = registry.SetCurrent(n, v);
            await CliAudit.WriteAsync(data, "model.current", $"{n}:{state.Current}", "models use");
            Console.WriteLine($"{n}: serving {state.Current}");
            return 0;
        }));
        return command;
    }

    private static Command Rollback()
    {
        var dataDir = CommonOptions.DataDir();
        var name = new Argument<string>("name");
        var url = ModelsServerCommands.UrlOption(required: false);
        var command = new Command("rollback", "Serve the version that served before the current one; with --url, in that running server at once.") { name, dataDir, url };
        command.SetAction((r, ct) => r.GetValue(url) is { } server ? ModelsServerCommands.RollbackAsync(r, server, r.GetValue(name)!, ct) : Run(async () =>
        {
            var data = DataDirectory.Resolve(r.GetValue(dataDir));
            var state = ModelRegistry.Open(data).Rollback(r.GetValue(name)!);
            await CliAudit.WriteAsync(data, "model.rollback", $"{r.GetValue(name)}:{state.Current}", "models rollback");
            Console.WriteLine($"{r.GetValue(name)}: rolled back; serving {state.Current}");
            return 0;
        }));
        return command;
    }

    private static Command Pull()
    {
        var dataDir = CommonOptions.DataDir();
        var repo = new Argument<string>("repo") { Description = "Hub repository, owner/name." };
        var revision = new Option<string>("--revision") { Description = "Commit, branch or tag; resolved to a commit and pinned in the manifest.", Required = true };
        var name = new Option<string?>("--name") { Description = "Registry name (default: the repository's name, lower-cased)." };
        var command = new Command("pull", $"Download a model from a Hugging Face–compatible hub (${HubPuller.EndpointVariable}; token from ${HubPuller.TokenVariable}), verified file by file.") { repo, revision, name, dataDir };
        command.SetAction(r => Run(async () =>
        {
            var registry = ModelRegistry.Open(DataDirectory.Resolve(r.GetValue(dataDir)).EnsureCreated());
            using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(30) };
            var puller = new HubPuller(http, HubPuller.DefaultEndpoint(), Environment.GetEnvironmentVariable(HubPuller.TokenVariable), registry);
            ProgressBar? bar = null;
            var manifest = await puller.PullAsync(r.GetValue(repo)!, r.GetValue(revision)!, r.GetValue(name),
                new Progress<PullProgress>(p => (bar ??= new ProgressBar("downloading", p.BytesTotal)).Report(p.BytesDone)));
            bar?.Finish();
            Console.WriteLine($"pulled {manifest.Source.Location}@{manifest.Source.Revision} as {manifest.Name} {manifest.Version} ({manifest.Files.Count} files, {manifest.TotalBytes} bytes, every file verified)");
            return 0;
        }));
        return command;
    }

    /// <summary>The gate's verdict for a quantized version, with its safety refusal rates when checked: "  gate:passed safety:passed (refusal 92.5% -> 90.0%, refusal-detector)".</summary>
    private static string GateText(GateStatus status, SafetyCheckRecord? safety)
    {
        if (status == GateStatus.NotGated && safety is null) return "";
        var text = $"  gate:{JsonNamingPolicy.SnakeCaseLower.ConvertName(status.ToString())}";
        if (safety is null) return text + " safety:-";
        return text + $" safety:{(safety.Passed ? "passed" : "failed")} (refusal {SafetyThresholds.Percent(safety.Figures.Reference.RefusalRate.Estimate)} -> {SafetyThresholds.Percent(safety.Figures.Candidate.RefusalRate.Estimate)}, {safety.Judge})";
    }

    /// <summary>Runs a command body; registry errors become one line on stderr and exit code 1.</summary>
    internal static async Task<int> Run(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (RegistryException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return 1;
        }
    }
}
