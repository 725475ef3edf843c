using System.CommandLine;
using Bulwark.Cli.Bench;
using Bulwark.Cli.Terminal;

namespace Bulwark.Cli.Commands;

/// <summary><c>bulwark bench serve</c>: load an OpenAI-compatible server over HTTP and report throughput and latency percentiles.</summary>
internal static class BenchServeCommand
{
    public const string DefaultKeyVariable = "BULWARK_API_KEY";

    public static Command Create()
    {
        var url = new Option<string>("--url") { Description = "Base URL of the server, e.g. http://127.0.0.1:8000.", Required = true };
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
            url, concurrency, requests, stream, json, keyEnv, model, maxTokens, prompt,
        };
        command.SetAction(async (result, ct) =>
        {
            var problems = new List<string>();
            if (!Uri.TryCreate(result.GetValue(url), UriKind.Absolute, out var baseUrl) || baseUrl.Scheme is not ("http" or "https"))
                problems.Add($"--url must be an absolute http(s) URL; got '{result.GetValue(url)}'");
            var (c, n, m) = (result.GetValue(concurrency), result.GetValue(requests), result.GetValue(maxTokens));
            if (c is < 1 or > 1024) problems.Add($"--concurrency must be between 1 and 1024; got {c}");
            if (n is < 1 or > 1_000_000) problems.Add($"--requests must be between 1 and 1000000; got {n}");
            if (m is < 1 or > 65536) problems.Add($"--max-tokens must be between 1 and 65536; got {m}");
            var variable = result.GetValue(keyEnv)!;
            var key = Environment.GetEnvironmentVariable(variable);
            if (string.IsNullOrEmpty(key) && variable != DefaultKeyVariable) problems.Add($"--api-key-env names {variable}, which is not set");
            if (problems.Count > 0)
            {
                foreach (var p in problems) Console.Error.WriteLine(p);
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
    }
}
