using System.CommandLine;
using Bulwark.Cli.Safety;
using Bulwark.Cli.Terminal;
using Bulwark.Engine.Evaluation;
using Bulwark.Engine.Evaluation.Safety;
using Bulwark.Server;
using Bulwark.Server.Guardrails.GuardModels;
using Bulwark.Server.Registry;

namespace Bulwark.Cli.Commands;

/// <summary>
/// The safety part of <c>models check</c> (and of the check <c>models quantize</c> runs): its options,
/// running it with progress on standard error, and reporting it as text or JSON.
/// </summary>
internal sealed class ModelsSafetyCheck
{
    private readonly Option<string?> _probes = new("--safety-probes") { Description = $"A JSON Lines file of safety probes, {{\"id\",\"prompt\",\"category\",\"kind\":\"harmful|benign\"}} per line (default: the built-in set; at most {SafetyProbeSet.MaxProbes} probes, {SafetyProbeSet.MaxFileBytes} bytes)." };
    private readonly Option<string?> _guardModel = new("--guard-model") { Description = "Judge the safety answers with this guard model (a .gguf file or a Hugging Face folder, run on the embedded engine) instead of the refusal detector (the weaker check): an answer is unsafe when the guard says unsafe." };

    private readonly Option<string?> _guardFormat = new("--guard-format") { Description = $"The guard model's prompt and verdict format: {string.Join(" or ", GuardModelFormat.ByName.Keys)} (default llama-guard-3)." };
    private readonly Option<double> _margin = new("--safety-margin") { Description = "Largest tolerated drop in refusal rate on harmful probes (and rise in unsafe answers), at least 0 and below 1; the gate fails when the lower bound of the change's paired 95% interval is above it.", DefaultValueFactory = _ => new SafetyThresholds().Margin };
    private readonly Option<int> _maxTokens = new("--safety-max-tokens") { Description = $"Longest answer generated per safety probe (1..{SafetyCheckOptions.MaxAnswerTokens} tokens).", DefaultValueFactory = _ => SafetyCheckOptions.DefaultMaxTokens };
    private readonly Option<string?> _upstream = new("--safety-upstream") { Description = $"Answer the safety probes on this OpenAI-compatible server (base URL, e.g. https://vllm.internal:8000/v1; http only to loopback) instead of the embedded engine; its key from ${UpstreamKeyVariable}." };
    private readonly Option<string?> _upstreamModels = new("--safety-upstream-models") { Description = "With --safety-upstream: the upstream's model names for the reference and the checked version, REFERENCE,CANDIDATE." };
    private readonly Option<bool> _skip = new("--no-safety") { Description = "Skip the safety comparison (a failed earlier safety check still holds the version back)." };

    public const string UpstreamKeyVariable = "BULWARK_UPSTREAM_KEY";

    public IEnumerable<Option> Options => [_probes, _guardModel, _guardFormat, _margin, _maxTokens, _upstream, _upstreamModels, _skip];

    /// <summary>The safety part as the command line asks for it; null with <c>--no-safety</c>.</summary>
    public SafetyCheckOptions? Read(ParseResult r)
    {
        if (r.GetValue(_skip)) return null;
        SafetyProbeSet probes;
        try
        {
            probes = r.GetValue(_probes) is { } file ? SafetyProbeSet.Load(file) : BuiltInSafetyProbes.Load();
        }
        catch (SafetyProbeSetException e)
        {
            throw new RegistryException(e.Message);
        }
        return new SafetyCheckOptions
        {
            Probes = probes,
            Judge = SafetyJudges.Create(r.GetValue(_guardModel), r.GetValue(_guardFormat)),
            MaxTokens = r.GetValue(_maxTokens),
            Thresholds = new SafetyThresholds { Margin = r.GetValue(_margin) },
            Upstream = Upstream(r.GetValue(_upstream), r.GetValue(_upstreamModels)),
        };
    }

    private static SafetyUpstream? Upstream(string? url, string? models)
    {
        if (url is null)
            return models is null ? null : throw new RegistryException("--safety-upstream-models needs --safety-upstream URL");
        if (!Uri.TryCreate(url, UriKind.Absolute, out var address) || (address.Scheme != "http" && address.Scheme != "https"))
            throw new RegistryException($"--safety-upstream must be an http or https URL; got '{url}'");
        if (address.Scheme == "http" && !address.IsLoopback)
            throw new RegistryException($"--safety-upstream {url} is plain HTTP to a non-loopback host; use https so the key and the probes are not sent in clear");
        var names = (models ?? "").Split(',', StringSplitOptions.TrimEntries);
        if (names.Length != 2 || names.Any(n => n.Length is 0 or > 256))
            throw new RegistryException("--safety-upstream needs --safety-upstream-models REFERENCE,CANDIDATE: the upstream's names of the two versions");
        return new SafetyUpstream(address, Environment.GetEnvironmentVariable(UpstreamKeyVariable), names[0], names[1]);
    }

    /// <summary>Runs the safety part with a progress bar per version and stage (n/N, rate, time left).</summary>
    public static async Task<SafetyCheckRecord?> RunAsync(ModelRegistry registry, string name, string version, string against, SafetyCheckOptions options)
    {
        ProgressBar? bar = null;
        (string, string) current = default;
        try
        {
            var record = await SafetyCheck.RunAsync(registry, name, version, against, options, TimeProvider.System, new Progress<SafetyProgress>(p =>
            {
                if (bar is null || current != (p.Version, p.Stage))
                {
                    bar?.Finish();
                    current = (p.Version, p.Stage);
                    bar = new ProgressBar($"safety: {p.Stage} {p.Version}", p.Total, "probes");
                }
                bar.Report(p.Done);
            }));
            bar?.Finish();
            return record;
        }
        finally
        {
            (options.Judge as IDisposable)?.Dispose(); // a guard-model judge owns its loaded model
        }
    }

    public static string AuditDetail(SafetyCheckRecord? record, string against) => record is null
        ? $"safety against {against}: not checked (no chat template)"
        : $"safety against {against} ({record.Judge}, {record.ProbeSet} probes {record.ProbeSetSha256[..12]}): " +
          (record.Passed ? "passed" : "failed: " + string.Join("; ", record.Failures));

    public static object? Json(SafetyCheckRecord? record) => record is null ? null : new
    {
        passed = record.Passed,
        failures = record.Failures,
        judge = record.Judge,
        refusal_only = record.RefusalOnly,
        probe_set = record.ProbeSet,
        probe_set_sha256 = record.ProbeSetSha256,
        max_tokens = record.MaxTokens,
        answered_by = record.AnsweredBy,
        margin = record.Thresholds.Margin,
        confidence = record.Thresholds.Confidence,
        reference = Rates(record.Figures.Reference),
        candidate = Rates(record.Figures.Candidate),
        refusal_drop = Change(record.Figures.RefusalDrop),
        unsafe_increase = record.Figures.UnsafeIncrease is { } u ? Change(u) : null,
        over_refusal_increase = record.Figures.OverRefusalIncrease is { } o ? Change(o) : null,
        lost_refusals = record.Figures.LostRefusals,
        new_unsafe = record.Figures.NewUnsafe,
    };

    private static object Rates(SafetyRates r) => new
    {
        harmful = r.Harmful, refused = r.Refused, refusal_rate = Interval(r.RefusalRate),
        @unsafe = r.Unsafe, unsafe_rate = r.UnsafeRate is { } u ? Interval(u) : null,
        benign = r.Benign, over_refused = r.OverRefused, over_refusal_rate = r.OverRefusalRate is { } o ? Interval(o) : null,
    };

    private static object Change(SafetyChange c) => new
    {
        estimate = c.Difference.Estimate, lower = c.Difference.Lower, upper = c.Difference.Upper,
        both = c.Counts.Both, first_only = c.Counts.FirstOnly, second_only = c.Counts.SecondOnly, neither = c.Counts.Neither,
    };

    private static object Interval(ProportionInterval i) => new { estimate = i.Estimate, lower = i.Lower, upper = i.Upper };

    public static void Print(SafetyCheckRecord? record, string version, string against)
    {
        if (record is null)
        {
            Console.WriteLine($"  safety: not checked — {against} has no chat template, so chat probes cannot be put to it");
            return;
        }
        var f = record.Figures;
        Console.WriteLine(record.RefusalOnly
            ? $"  safety, judged by the {record.Judge} (the weaker check: it sees refusals, not harmful content; --guard-model judges content)"
            : $"  safety, judged by {record.Judge}");
        Console.WriteLine($"  {record.ProbeSet} probe set ({f.Reference.Harmful} harmful, {f.Reference.Benign} benign), answers of up to {record.MaxTokens} tokens, {Percent(record.Thresholds.Confidence, 0)} intervals, answered by the {record.AnsweredBy ?? "embedded engine"}");
        Console.WriteLine($"  {"",-26} {against + " (reference)",-28} {version}");
        Console.WriteLine($"  {"refusal, harmful probes",-26} {RateText(f.Reference.Refused, f.Reference.Harmful, f.Reference.RefusalRate),-28} {RateText(f.Candidate.Refused, f.Candidate.Harmful, f.Candidate.RefusalRate)}");
        if (f.Reference.UnsafeRate is { } ru && f.Candidate.UnsafeRate is { } cu)
            Console.WriteLine($"  {"unsafe answers, harmful",-26} {RateText(f.Reference.Unsafe!.Value, f.Reference.Harmful, ru),-28} {RateText(f.Candidate.Unsafe!.Value, f.Candidate.Harmful, cu)}");
        else
            Console.WriteLine($"  {"unsafe answers, harmful",-26} {"not judged",-28} not judged");
        if (f.Reference.OverRefusalRate is { } ro && f.Candidate.OverRefusalRate is { } co)
            Console.WriteLine($"  {"over-refusal, benign",-26} {RateText(f.Reference.OverRefused, f.Reference.Benign, ro),-28} {RateText(f.Candidate.OverRefused, f.Candidate.Benign, co)}");
        Console.WriteLine($"  refusal drop   {ChangeText(f.RefusalDrop)}   (fails when the lower bound is above {Percent(record.Thresholds.Margin)})");
        if (f.UnsafeIncrease is { } ui) Console.WriteLine($"  unsafe rise    {ChangeText(ui)}");
        if (f.OverRefusalIncrease is { } oi) Console.WriteLine($"  over-refusal rise {ChangeText(oi)}   (reported, not gated)");
        if (f.LostRefusals.Count > 0) Console.WriteLine($"  refused by {against} only: {string.Join(", ", f.LostRefusals.Take(20))}{(f.LostRefusals.Count > 20 ? ", …" : "")}");
        Console.WriteLine(record.Passed ? "  safety: PASSED" : $"  safety: FAILED ({string.Join("; ", record.Failures)})");
    }

    private static string RateText(int count, int total, ProportionInterval i) =>
        $"{count}/{total} {Percent(i.Estimate)} [{Percent(i.Lower)}, {Percent(i.Upper)}]";

    private static string ChangeText(SafetyChange change) =>
        $"{(change.Difference.Estimate > 0 ? "+" : "")}{Percent(change.Difference.Estimate)} [{Percent(change.Difference.Lower)}, {Percent(change.Difference.Upper)}] (paired, Newcombe; {change.Counts.FirstOnly} vs {change.Counts.SecondOnly} discordant)";

    private static string Percent(double fraction, int decimals = 1) => SafetyThresholds.Percent(fraction, decimals);
}
