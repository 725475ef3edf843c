using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Bulwark.Bench.Http;

/// <summary>What <c>bench/run serve</c> sends.</summary>
internal sealed record LoadSettings
{
    public required Uri Url { get; init; }
    public required int Concurrency { get; init; }
    public required int Requests { get; init; }
    public bool Stream { get; init; }
    public string? ApiKey { get; init; }
    public string? Model { get; init; }
    public int MaxTokens { get; init; } = 32;
    public string Prompt { get; init; } = "Write a short story about a lighthouse keeper.";
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(5);
}

/// <summary>One request's outcome. Times in seconds; TTFT and ITL only when streaming.</summary>
internal sealed record RequestSample(int Status, string? Error, double Latency, double? TimeToFirstToken, double[] InterTokenLatencies, int CompletionTokens);

/// <summary>
/// An HTTP load generator for OpenAI-compatible servers: <see cref="LoadSettings.Concurrency"/>
/// workers send chat completions until <see cref="LoadSettings.Requests"/> have been sent. A
/// streamed request's first content chunk gives its time to first token, later content chunks
/// its inter-token latencies (one chunk per token, as Bulwark and vLLM stream).
/// </summary>
internal sealed class HttpLoadGenerator(LoadSettings settings, HttpMessageHandler? handler = null)
{
    public async Task<LoadReport> RunAsync(IProgress<long>? progress, CancellationToken ct)
    {
        using var http = new HttpClient(handler ?? new SocketsHttpHandler { MaxConnectionsPerServer = settings.Concurrency }, disposeHandler: handler is null)
        {
            BaseAddress = new Uri(settings.Url.ToString().TrimEnd('/') + "/"),
            Timeout = settings.Timeout,
        };
        if (settings.ApiKey is not null) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", settings.ApiKey);
        var model = settings.Model ?? await FirstModelAsync(http, ct);
        var samples = new RequestSample[settings.Requests];
        var next = -1;
        var done = 0L;
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, Math.Min(settings.Concurrency, settings.Requests)).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < settings.Requests)
            {
                samples[i] = await SendAsync(http, model, ct);
                progress?.Report(Interlocked.Increment(ref done));
            }
        });
        await Task.WhenAll(workers);
        return LoadReport.From(settings, model, samples, clock.Elapsed.TotalSeconds);
    }

    private static async Task<string> FirstModelAsync(HttpClient http, CancellationToken ct)
    {
        using var response = await http.GetAsync("v1/models", ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"GET /v1/models answered {(int)response.StatusCode}: {Truncate(text)} (pass --model, or a key with --api-key-env)");
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.GetProperty("data")[0].GetProperty("id").GetString()!;
    }

    private async Task<RequestSample> SendAsync(HttpClient http, string model, CancellationToken ct)
    {
        var body = JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["model"] = model,
            ["messages"] = new[] { new { role = "user", content = settings.Prompt } },
            ["max_tokens"] = settings.MaxTokens,
            ["stream"] = settings.Stream,
            ["stream_options"] = settings.Stream ? new { include_usage = true } : null,
        });
        var start = Stopwatch.GetTimestamp();
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
            var status = (int)response.StatusCode;
            if (!response.IsSuccessStatusCode)
                return new RequestSample(status, Truncate(await response.Content.ReadAsStringAsync(ct)), Elapsed(start), null, [], 0);
            if (!settings.Stream)
            {
                using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
                return new RequestSample(status, null, Elapsed(start), null, [], doc.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
            }
            return await ReadStreamAsync(response, start, ct);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException or JsonException && !ct.IsCancellationRequested)
        {
            return new RequestSample(0, e.GetType().Name + ": " + e.Message, Elapsed(start), null, [], 0);
        }
    }

    private static async Task<RequestSample> ReadStreamAsync(HttpResponseMessage response, long start, CancellationToken ct)
    {
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        double? ttft = null;
        var last = 0.0;
        var itl = new List<double>();
        var tokens = 0;
        string? error = null;
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            var data = line.AsSpan(6);
            if (data.SequenceEqual("[DONE]")) break;
            using var doc = JsonDocument.Parse(data.ToString());
            var root = doc.RootElement;
            if (root.TryGetProperty("error", out var e)) error = Truncate(e.GetProperty("message").GetString() ?? "error event");
            if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
                tokens = usage.GetProperty("completion_tokens").GetInt32();
            if (!root.TryGetProperty("choices", out var choices) || choices.GetArrayLength() == 0) continue;
            if (!choices[0].TryGetProperty("delta", out var delta) || !delta.TryGetProperty("content", out var content) || content.GetString() is not { Length: > 0 }) continue;
            var now = Elapsed(start);
            if (ttft is null) ttft = now; else itl.Add(now - last);
            last = now;
        }
        return new RequestSample(error is null ? 200 : 599, error, Elapsed(start), ttft, itl.ToArray(), tokens);
    }

    private static double Elapsed(long start) => Stopwatch.GetElapsedTime(start).TotalSeconds;

    private static string Truncate(string text) => text.Length <= 200 ? text : text[..200] + "...";
}
