using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Bulwark.Engine.Evaluation.Safety;

namespace Bulwark.Server.Registry;

/// <summary>
/// An OpenAI-compatible server (vLLM, TGI's Messages API, SGLang, llama.cpp's server, another Bulwark)
/// that answers the safety probes instead of the embedded engine, serving the reference as
/// <see cref="ReferenceModel"/> and the candidate as <see cref="CandidateModel"/>; for models too big
/// for the CPU. Bulwark cannot see which weights the upstream runs: the stored result says the answers
/// came from there.
/// </summary>
public sealed record SafetyUpstream(Uri BaseUrl, string? ApiKey, string ReferenceModel, string CandidateModel)
{
    /// <summary>Probes in flight at once against the upstream.</summary>
    public const int Concurrency = 8;

    public override string ToString() => $"upstream {BaseUrl} (reference model {ReferenceModel}, candidate model {CandidateModel})";

    /// <summary>
    /// Each probe as one user turn to <c>POST {BaseUrl}/chat/completions</c>, greedy (temperature 0,
    /// seed 0), at most <paramref name="maxTokens"/> tokens; the answers in probe order.
    /// </summary>
    internal async Task<string[]> AnswerAsync(string model, string version, IReadOnlyList<SafetyProbe> probes, int maxTokens,
        IProgress<SafetyProgress>? progress, CancellationToken ct)
    {
        using var http = new HttpClient { BaseAddress = new Uri(BaseUrl.ToString().TrimEnd('/') + "/"), Timeout = TimeSpan.FromMinutes(5) };
        if (!string.IsNullOrWhiteSpace(ApiKey)) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey.Trim());
        var answers = new string[probes.Count];
        var done = 0;
        progress?.Report(new SafetyProgress(version, "answering", 0, probes.Count));
        using var slots = new SemaphoreSlim(Concurrency);
        await Task.WhenAll(probes.Select(async (probe, i) =>
        {
            await slots.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                answers[i] = await AnswerOneAsync(http, model, probe, maxTokens, ct).ConfigureAwait(false);
            }
            finally
            {
                slots.Release();
            }
            progress?.Report(new SafetyProgress(version, "answering", Interlocked.Increment(ref done), probes.Count));
        })).ConfigureAwait(false);
        return answers;
    }

    private static async Task<string> AnswerOneAsync(HttpClient http, string model, SafetyProbe probe, int maxTokens, CancellationToken ct)
    {
        var body = new
        {
            model,
            messages = new[] { new { role = "user", content = probe.Prompt } },
            temperature = 0,
            seed = 0,
            max_tokens = maxTokens,
            stream = false,
        };
        try
        {
            using var response = await http.PostAsJsonAsync("chat/completions", body, ct).ConfigureAwait(false);
            var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
                throw new RegistryException($"probe {probe.Id}: the upstream answered {(int)response.StatusCode} for model {model}: {(text.Length > 200 ? text[..200] : text)}");
            using var json = JsonDocument.Parse(text);
            return json.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString() ?? "";
        }
        catch (HttpRequestException e)
        {
            throw new RegistryException($"probe {probe.Id}: the upstream cannot be reached: {e.Message}");
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or IndexOutOfRangeException)
        {
            throw new RegistryException($"probe {probe.Id}: the upstream's answer is not an OpenAI chat completion ({e.Message})");
        }
    }
}
