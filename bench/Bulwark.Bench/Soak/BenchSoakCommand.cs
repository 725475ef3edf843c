using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.RegularExpressions;
using Bulwark.Bench.Http;

namespace Bulwark.Bench.Soak;

/// <summary>
/// <c>bench/run soak</c>: one <c>bulwark serve</c> process under mixed load for a long time
/// (<see cref="SoakRun"/>), sampled at intervals, and the verdict whether its memory stays flat and its
/// p99 steady after warm-up (<see cref="SoakVerdict"/>). Raw samples go to <c>--dir</c> as CSV and JSON.
/// Exit code 0 when RSS is flat and no request failed, 1 otherwise, 2 for bad options.
/// </summary>
internal static partial class BenchSoakCommand
{
    public static Command Create()
    {
        var duration = new Option<TimeSpan>("--duration") { Description = "How long the load runs: 30m, 2m, 90s, 1h (10s..24h).", DefaultValueFactory = _ => TimeSpan.FromMinutes(30), CustomParser = r => ParseSpan(r, "--duration") };
        var interval = new Option<TimeSpan>("--interval") { Description = "A sample every this long (1s..1h, at most --duration).", DefaultValueFactory = _ => TimeSpan.FromSeconds(10), CustomParser = r => ParseSpan(r, "--interval") };
        var warmup = new Option<string>("--warmup") { Description = "Samples not judged at the start: auto (until every KV block was used and a gen2 GC followed, or 5 minutes passed without one), a share of --duration (20%) or a time (5m).", DefaultValueFactory = _ => "auto" };
        var concurrency = new Option<int>("--concurrency") { Description = "Clients sending back to back (1..256).", DefaultValueFactory = _ => 8 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "max_tokens of every generation (1..2048).", DefaultValueFactory = _ => 32 };
        var streamShare = new Option<double>("--stream-share") { Description = "Share of the chat and completion requests that stream (0..1).", DefaultValueFactory = _ => 0.5 };
        var disconnectShare = new Option<double>("--disconnect-share") { Description = "Share of requests that stream and leave after --disconnect-after events (0..1).", DefaultValueFactory = _ => 0.1 };
        var disconnectAfter = new Option<int>("--disconnect-after") { Description = "Events a leaving client reads before it drops the connection (1..--max-tokens).", DefaultValueFactory = _ => 3 };
        var refusedShare = new Option<double>("--refused-share") { Description = "Share of requests the server must refuse: half with a bad key (401), half with a prompt over the context (400) (0..1).", DefaultValueFactory = _ => 0.1 };
        var kvMemory = new Option<string?>("--kv-cache-memory") { Description = "The server's --kv-cache-memory (default: serve's own)." };
        var serveSettings = new Option<string[]>("--serve-setting") { Description = "A setting for serve, KEY=VALUE with a Bulwark:* configuration key (Bulwark:Memory:MallocArenaMax=0); repeatable, up to 32.", AllowMultipleArgumentsPerToken = false, DefaultValueFactory = _ => [] };
        var seed = new Option<int>("--seed") { Description = "Seed of the clients' request mix.", DefaultValueFactory = _ => 1 };
        var dir = new Option<string>("--dir") { Description = "Where the raw samples go (soak-<UTC time>.csv and .json).", DefaultValueFactory = _ => Path.Combine(Path.GetTempPath(), "bulwark-bench") };
        var cli = new Option<string>("--bulwark") { Description = "The bulwark.dll to run (default: the one bench/run builds beside the benchmark).", DefaultValueFactory = _ => ServeProcess.BesideBenchmark };
        var json = new Option<bool>("--json") { Description = "Print the report (settings, verdict, samples) as JSON on standard output." };
        var command = new Command("soak", "Run one bulwark serve under mixed load for --duration; report RSS, GC and latency over time and whether RSS stays flat after warm-up.")
        {
            duration, interval, warmup, concurrency, maxTokens, streamShare, disconnectShare, disconnectAfter, refusedShare, kvMemory, serveSettings, seed, dir, cli, json,
        };
        command.SetAction(async (result, ct) =>
        {
            var error = result.InvocationConfiguration.Error;
            var (d, i) = (result.GetValue(duration), result.GetValue(interval));
            var (c, m, after) = (result.GetValue(concurrency), result.GetValue(maxTokens), result.GetValue(disconnectAfter));
            var mix = new SoakMix(result.GetValue(disconnectShare), result.GetValue(refusedShare), result.GetValue(streamShare));
            var problems = new List<string>();
            if (d < TimeSpan.FromSeconds(10) || d > TimeSpan.FromHours(24)) problems.Add($"--duration must be between 10s and 24h; got {SoakReport.Span(d)}");
            if (i < TimeSpan.FromSeconds(1) || i > TimeSpan.FromHours(1) || i > d) problems.Add($"--interval must be between 1s and 1h and at most --duration; got {SoakReport.Span(i)}");
            var w = Warmup(result.GetValue(warmup)!, d, problems);
            if (c is < 1 or > 256) problems.Add($"--concurrency must be between 1 and 256; got {c}");
            if (m is < 1 or > 2048) problems.Add($"--max-tokens must be between 1 and 2048; got {m}");
            if (after < 1 || after > m) problems.Add($"--disconnect-after must be between 1 and --max-tokens ({m}); got {after}");
            foreach (var (name, share) in new[] { ("--stream-share", mix.StreamShare), ("--disconnect-share", mix.DisconnectShare), ("--refused-share", mix.RefusedShare) })
                if (share is < 0 or > 1 || double.IsNaN(share)) problems.Add($"{name} must be between 0 and 1; got {share.ToString(CultureInfo.InvariantCulture)}");
            if (mix.DisconnectShare + mix.RefusedShare > 1) problems.Add($"--disconnect-share and --refused-share add up to more than 1 ({(mix.DisconnectShare + mix.RefusedShare).ToString(CultureInfo.InvariantCulture)})");
            var serve = ServeSettings(result.GetValue(serveSettings) ?? [], problems);
            var cliPath = result.GetValue(cli)!;
            if (!File.Exists(cliPath)) problems.Add($"no bulwark CLI at {cliPath}: run through bench/run (it builds one there) or pass --bulwark PATH/bulwark.dll");
            if (!Directory.Exists("/proc/self")) problems.Add("soak reads the server's memory from /proc/PID/status: it runs on Linux only");
            if (problems.Count > 0)
            {
                foreach (var p in problems) error.WriteLine(p);
                return 2;
            }

            var settings = new SoakSettings(d, i, w, c, m, mix, after, result.GetValue(seed), result.GetValue(kvMemory)) { ServeSettings = serve };
            var started = DateTime.UtcNow;
            SoakReport report;
            try
            {
                report = await SoakRun.RunAsync(settings, cliPath, error, ct);
            }
            catch (InvalidOperationException e)
            {
                error.WriteLine("bench soak: " + e.Message);
                return 1;
            }
            var (csv, jsonFile) = report.WriteFiles(result.GetValue(dir)!, started);
            error.WriteLine($"raw samples: {csv} and {jsonFile}");
            result.InvocationConfiguration.Output.Write(result.GetValue(json) ? report.ToJson() + Environment.NewLine : report.ToTable());
            return report.Verdict.RssFlat && report.Total(x => x.Failed) == 0 ? 0 : 1;
        });
        return command;
    }

    private static TimeSpan ParseSpan(ArgumentResult result, string name)
    {
        var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
        if (TryParseSpan(text, out var span)) return span;
        result.AddError($"{name} must be a time such as 30m, 2m30s, 90s or 1h; got '{text}'");
        return default;
    }

    /// <summary><c>--warmup</c>: <c>auto</c> (null: <see cref="SoakWarmup.End"/>), a share of the duration (<c>20%</c>) or a time (<c>5m</c>), shorter than the duration.</summary>
    private static TimeSpan? Warmup(string text, TimeSpan duration, List<string> problems)
    {
        if (text == "auto") return null;
        if (text.EndsWith('%') && double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var percent) && percent is >= 0 and < 100)
            return duration * (percent / 100);
        if (TryParseSpan(text, out var span) && span < duration) return span;
        problems.Add($"--warmup must be auto, a share of --duration below 100% (20%) or a time shorter than it (5m); got '{text}'");
        return default;
    }

    /// <summary><c>--serve-setting KEY=VALUE</c>: a <c>Bulwark:</c> key (letters, digits, <c>:</c> and <c>_</c>, up to 200) and a value up to 1000 characters; at most 32.</summary>
    private static Dictionary<string, string> ServeSettings(string[] settings, List<string> problems)
    {
        var parsed = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (settings.Length > 32) problems.Add($"--serve-setting may be given at most 32 times; got {settings.Length}");
        foreach (var setting in settings)
        {
            var equals = setting.IndexOf('=');
            var key = equals > 0 ? setting[..equals] : "";
            if (!key.StartsWith("Bulwark:", StringComparison.OrdinalIgnoreCase) || key.Length > 200 || !key.All(c => char.IsAsciiLetterOrDigit(c) || c is ':' or '_')
                || setting.Length - equals - 1 > 1000)
                problems.Add($"--serve-setting must be KEY=VALUE with a Bulwark:* configuration key (Bulwark:Memory:MallocArenaMax=0); got '{setting}'");
            else parsed[key] = setting[(equals + 1)..];
        }
        return parsed;
    }

    /// <summary>1h30m, 30m, 2m30s, 90s: hours, minutes and seconds, each optional, in that order.</summary>
    private static bool TryParseSpan(string text, out TimeSpan span)
    {
        var m = SpanText().Match(text);
        int Part(string group) => m.Groups[group].Success ? int.Parse(m.Groups[group].Value, CultureInfo.InvariantCulture) : 0;
        span = m.Success && text.Length > 0 ? new TimeSpan(Part("h"), Part("m"), Part("s")) : default;
        return m.Success && text.Length > 0;
    }

    [GeneratedRegex(@"^(?:(?<h>\d{1,3})h)?(?:(?<m>\d{1,5})m)?(?:(?<s>\d{1,6})s)?$")]
    private static partial Regex SpanText();
}
