using System.CommandLine;
using Bulwark.Cli.Terminal;

namespace Bulwark.Bench.Http;

/// <summary>
/// <c>bench/run serve</c>: load an OpenAI-compatible server over HTTP and report throughput and
/// latency percentiles; or, with <c>--compare-security</c>, measure the security front's overhead
/// between two in-process servers (<see cref="SecurityComparison"/>); or, with <c>--compare-gateway</c>,
/// the latency a Bulwark gateway adds in front of an upstream (<see cref="GatewayComparison"/>).
/// </summary>
internal static class BenchServeCommand
{
    public const string DefaultKeyVariable = "BULWARK_API_KEY";

    public static Command Create()
    {
        var url = new Option<string?>("--url") { Description = "Base URL of the server, e.g. http://127.0.0.1:8000 (required unless --compare-security)." };
        var compare = new Option<bool>("--compare-security")
        {
            Description = "Instead of loading --url: start two servers in this process on the demo model, security on (key, in-memory quotas, audit) " +
                          "and off, alternate requests between them and print p50/p99 of each and the difference. --requests defaults to 1000, --max-tokens to 1.",
        };
        var gateway = new Option<bool>("--compare-gateway")
        {
            Description = "Instead of loading --url: start an upstream Bulwark (security off) and a gateway in front of it (security on: key, in-memory quotas, audit) " +
                          "in this process, alternate requests sent to the upstream directly and through the gateway, and print p50/p99 of each and the latency the gateway adds. " +
                          "--requests defaults to 1000, --max-tokens to 1.",
        };
        var instant = new Option<bool>("--instant-engine")
        {
            Description = "With --compare-security or --compare-gateway: answer from the tokenizer at once instead of generating, to take the engine's latency and jitter out of the comparison.",
        };
        var warmup = new Option<int?>("--warmup")
        {
            Description = "With --compare-security or --compare-gateway: unmeasured requests per server first (0..1000000; default --requests / 10, " +
                          "and with --compare-gateway then on until no method was JIT-compiled for 500 pairs and 3 s, at most 3 minutes).",
        };
        var concurrency = new Option<int>("--concurrency") { Description = "Requests in flight at once (1..1024).", DefaultValueFactory = _ => 4 };
        var requests = new Option<int>("--requests") { Description = "Requests to send in all (1..1000000).", DefaultValueFactory = _ => 64 };
        var stream = new Option<bool>("--stream") { Description = "Stream responses (measures time to first token and inter-token latency)." };
        var json = new Option<bool>("--json") { Description = "Print the report as JSON on standard output." };
        var keyEnv = new Option<string>("--api-key-env") { Description = $"Environment variable holding the API key (default {DefaultKeyVariable}); the key itself is never a flag.", DefaultValueFactory = _ => DefaultKeyVariable };
        var model = new Option<string?>("--model") { Description = "Model id to ask for (default: the first in /v1/models)." };
        var maxTokens = new Option<int>("--max-tokens") { Description = "max_tokens of every request (1..65536).", DefaultValueFactory = _ => 32 };
        var prompt = new Option<string?>("--prompt") { Description = "The user message every request sends." };
        var command = new Command("serve", "Load a running OpenAI-compatible server: requests/s, tokens/s, TTFT and ITL p50/p90/p99, errors.")
        {
            url, concurrency, requests, stream, json, keyEnv, model, maxTokens, prompt, compare, gateway, warmup, instant,
        };
        command.SetAction(async (result, ct) =>
        {
            if (result.GetValue(compare) && result.GetValue(gateway))
            {
                result.InvocationConfiguration.Error.WriteLine("--compare-security and --compare-gateway are separate runs; choose one");
                return 2;
            }
            if (result.GetValue(compare) || result.GetValue(gateway)) return await CompareAsync(result, result.GetValue(gateway), ct);
            var problems = new List<string>();
            if (result.GetValue(instant)) problems.Add("--instant-engine applies only to --compare-security and --compare-gateway");
            if (result.GetValue(url) is null) problems.Add("--url is required (or --compare-security)");
            else if (!Uri.TryCreate(result.GetValue(url), UriKind.Absolute, out var parsed) || parsed.Scheme is not ("http" or "https"))
                problems.Add($"--url must be an absolute http(s) URL; got '{result.GetValue(url)}'");
            Uri.TryCreate(result.GetValue(url), UriKind.Absolute, out var baseUrl);
            var (c, n, m) = (result.GetValue(concurrency), result.GetValue(requests), result.GetValue(maxTokens));
            if (c is < 1 or > 1024) problems.Add($"--concurrency must be between 1 and 1024; got {c}");
            if (n is < 1 or > 1_000_000) problems.Add($"--requests must be between 1 and 1000000; got {n}");
            if (m is < 1 or > 65536) problems.Add($"--max-tokens must be between 1 and 65536; got {m}");
            var variable = result.GetValue(keyEnv)!;
            var key = Environment.GetEnvironmentVariable(variable);
            if (string.IsNullOrEmpty(key) && variable != DefaultKeyVariable) problems.Add($"--api-key-env names {variable}, which is not set");
            if (problems.Count > 0)
            {
                foreach (var p in problems) result.InvocationConfiguration.Error.WriteLine(p);
                return 2;
            }
            var settings = new LoadSettings
            {
                Url = baseUrl!, Concurrency = c, Requests = n, Stream = result.GetValue(stream), ApiKey = string.IsNullOrEmpty(key) ? null : key,
                Model = result.GetValue(model), MaxTokens = m, Prompt = result.GetValue(prompt) ?? new LoadSettings { Url = baseUrl!, Concurrency = 1, Requests = 1 }.Prompt,
            };
            var bar = new ProgressBar("requests", n, "req");
            LoadReport report;
            try
            {
                report = await new HttpLoadGenerator(settings).RunAsync(bar, ct);
            }
            catch (Exception e) when (e is InvalidOperationException or HttpRequestException)
            {
                Console.Error.WriteLine("bench serve: " + e.Message);
                return 1;
            }
            bar.Finish();
            Console.Out.Write(result.GetValue(json) ? report.ToJson() + Environment.NewLine : report.ToTable());
            return report.Succeeded == report.Requests ? 0 : 1;
        });
        return command;

        async Task<int> CompareAsync(ParseResult result, bool throughGateway, CancellationToken ct)
        {
            var output = result.InvocationConfiguration.Output;
            var error = result.InvocationConfiguration.Error;
            var problems = new List<string>();
            var flag = throughGateway ? "--compare-gateway" : "--compare-security";
            if (result.GetValue(url) is not null) problems.Add($"{flag} starts its own servers; drop --url");
            foreach (var unused in new Option[] { concurrency, stream, keyEnv, model, prompt })
                if (result.GetResult(unused) is { Implicit: false }) problems.Add($"{unused.Name} does not apply to {flag} (requests go one at a time to the demo model)");
            var n = result.GetResult(requests) is { Implicit: false } ? result.GetValue(requests) : 1000;
            var m = result.GetResult(maxTokens) is { Implicit: false } ? result.GetValue(maxTokens) : 1;
            var asked = result.GetValue(warmup);
            var w = asked ?? n / 10;
            if (n is < 1 or > 1_000_000) problems.Add($"--requests must be between 1 and 1000000; got {n}");
            if (m is < 1 or > 65536) problems.Add($"--max-tokens must be between 1 and 65536; got {m}");
            if (w is < 0 or > 1_000_000) problems.Add($"--warmup must be between 0 and 1000000; got {w}");
            if (problems.Count > 0)
            {
                foreach (var p in problems) error.WriteLine(p);
                return 2;
            }
            var bar = result.GetValue(json) ? null : new ProgressBar("pairs", n, "req");
            IComparisonReport report;
            try
            {
                report = throughGateway
                    ? await GatewayComparison.RunAsync(n, asked, m, result.GetValue(instant), bar, ct)
                    : await SecurityComparison.RunAsync(n, w, m, result.GetValue(instant), bar, ct);
            }
            catch (InvalidOperationException e)
            {
                error.WriteLine("bench serve: " + e.Message);
                return 1;
            }
            bar?.Finish();
            output.Write(result.GetValue(json) ? report.ToJson() + Environment.NewLine : report.ToTable());
            return 0;
        }
    }
}
