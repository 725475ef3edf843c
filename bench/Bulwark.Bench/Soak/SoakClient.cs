using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Bulwark.Server.Security;

namespace Bulwark.Bench.Soak;

/// <summary>How a soak request ended: as the mix meant it to (completed, refused, left mid-stream), or not (failed).</summary>
internal enum SoakOutcome { Completed, Refused, Disconnected, Failed }

/// <summary>One request's outcome; <see cref="Seconds"/> from send to the end of the response (to the cancel, for a disconnect).</summary>
internal readonly record struct SoakResult(SoakOutcome Outcome, double Seconds, string? Error);

/// <summary>
/// Sends one soak request of a given <see cref="SoakRequestKind"/> and judges how it ended: a
/// generation must answer 200 with a complete body or a stream that ends in <c>[DONE]</c>; a bad key
/// must get 401 and an over-long prompt 400 <c>context_length_exceeded</c>; a disconnect reads
/// <c>disconnectAfter</c> events and then drops the connection, as a client that navigates away does.
/// </summary>
internal sealed class SoakClient(HttpClient http, string model, string apiKey, int maxTokens, int disconnectAfter)
{
    private static readonly string[] Prompts =
    [
        "Write a short story about a lighthouse keeper.",
        "Explain how a paged KV cache works.",
        "List five uses of a Raspberry Pi.",
        "Summarise the plot of a detective novel.",
    ];

    /// <summary>Words enough to pass any small model's context (one token or more each): the demo model's is 2048.</summary>
    private static readonly string LongPrompt = string.Join(' ', Enumerable.Range(0, 6000).Select(i => "w" + i));

    /// <exception cref="OperationCanceledException"><paramref name="ct"/> was cancelled (the soak ended); the request counts for nothing.</exception>
    public async Task<SoakResult> SendAsync(SoakRequestKind kind, Random random, CancellationToken ct)
    {
        var chat = kind is SoakRequestKind.Chat or SoakRequestKind.ChatStream or SoakRequestKind.BadKey || kind == SoakRequestKind.Disconnect && random.Next(2) == 0;
        var stream = kind is SoakRequestKind.ChatStream or SoakRequestKind.CompletionStream or SoakRequestKind.Disconnect;
        var prompt = kind == SoakRequestKind.LongPrompt ? LongPrompt : $"{Prompts[random.Next(Prompts.Length)]} ({random.Next(1000)})";
        using var request = new HttpRequestMessage(HttpMethod.Post, chat ? "v1/chat/completions" : "v1/completions")
        {
            Content = new StringContent(Body(chat, prompt, stream), Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", kind == SoakRequestKind.BadKey ? BadKey(random) : apiKey);
        var start = Stopwatch.GetTimestamp();
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
            var status = (int)response.StatusCode;
            var expected = kind switch { SoakRequestKind.BadKey => 401, SoakRequestKind.LongPrompt => 400, _ => 200 };
            if (status != expected || expected != 200)
            {
                var text = await response.Content.ReadAsStringAsync(ct);
                if (status != expected) return Failed(start, $"{kind} answered {status}, not {expected}: {Truncate(text)}");
                if (kind == SoakRequestKind.LongPrompt && !text.Contains("context_length_exceeded", StringComparison.Ordinal))
                    return Failed(start, $"{kind} was refused for another reason: {Truncate(text)}");
                return new SoakResult(SoakOutcome.Refused, Elapsed(start), null);
            }
            if (!stream)
            {
                using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
                return doc.RootElement.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0
                    ? new SoakResult(SoakOutcome.Completed, Elapsed(start), null)
                    : Failed(start, $"{kind} answered 200 without choices");
            }
            return await ReadStreamAsync(kind, response, start, ct);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException or JsonException && !ct.IsCancellationRequested)
        {
            return Failed(start, $"{kind}: {e.GetType().Name}: {e.Message}");
        }
    }

    private async Task<SoakResult> ReadStreamAsync(SoakRequestKind kind, HttpResponseMessage response, long start, CancellationToken ct)
    {
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        var events = 0;
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            if (line.AsSpan(6).SequenceEqual("[DONE]")) return new SoakResult(SoakOutcome.Completed, Elapsed(start), null);
            if (line.Contains("\"error\"", StringComparison.Ordinal)) return Failed(start, $"{kind} streamed an error: {Truncate(line)}");
            // Leaving here disposes the response unread, which closes the connection under the server's stream.
            if (kind == SoakRequestKind.Disconnect && ++events == disconnectAfter) return new SoakResult(SoakOutcome.Disconnected, Elapsed(start), null);
        }
        return Failed(start, $"{kind}: the stream ended without [DONE]");
    }

    private string Body(bool chat, string prompt, bool stream)
    {
        var body = new Dictionary<string, object?> { ["model"] = model, ["max_tokens"] = maxTokens, ["stream"] = stream };
        if (chat) body["messages"] = new[] { new { role = "user", content = prompt } };
        else body["prompt"] = prompt;
        if (stream) body["stream_options"] = new { include_usage = true };
        return JsonSerializer.Serialize(body);
    }

    /// <summary>A well-formed key the server never issued: half with an unknown id, half with the real key's id and a wrong secret.</summary>
    private string BadKey(Random random)
    {
        var (_, other) = ApiKeyFormat.Generate(admin: false);
        const int idEnd = 4 + ApiKeyFormat.IdLength + 1;
        return random.Next(2) == 0 ? other : apiKey[..idEnd] + other[idEnd..];
    }

    private static SoakResult Failed(long start, string error) => new(SoakOutcome.Failed, Elapsed(start), error);

    private static double Elapsed(long start) => Stopwatch.GetElapsedTime(start).TotalSeconds;

    private static string Truncate(string text) => text.Length <= 200 ? text : text[..200] + "...";
}
