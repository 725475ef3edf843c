using System.Text;
using System.Text.Json;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Hosting;

namespace Bulwark.Server.Tests.Gateway;

/// <summary>
/// Logprobs of models an upstream serves: asked of the upstream in its protocol and relayed as the
/// upstream reported them, the same tokens, log-probabilities and alternatives a client gets by
/// asking the upstream directly (the upstreams are Bulwark servers, whose logprobs other tests hold).
/// </summary>
public sealed class GatewayLogprobsTests
{
    private static string Body(bool chat, bool stream, int top, int maxTokens = 10) => chat
        ? JsonSerializer.Serialize(new
        {
            model = "test-model", max_tokens = maxTokens, temperature = 0, stream, logprobs = true, top_logprobs = top,
            messages = new[] { new { role = "user", content = "Hello there" } },
        })
        : JsonSerializer.Serialize(new { model = "test-model", max_tokens = maxTokens, temperature = 0, stream, logprobs = top, prompt = "Once upon" });

    /// <summary>Every token of the answer as (text, logprob, alternatives), from either API's shape, whole or streamed.</summary>
    private static async Task<List<string>> TokensAsync(HttpClient http, bool chat, bool stream, int top, int maxTokens = 10)
    {
        var path = chat ? "v1/chat/completions" : "v1/completions";
        using var response = await http.PostAsync(path, new StringContent(Body(chat, stream, top, maxTokens), Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        var choices = stream
            ? RawHttp.Events(text).Where(e => e != "[DONE]").Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")).Where(c => c.GetArrayLength() > 0).Select(c => c[0]).ToList()
            : [JsonDocument.Parse(text).RootElement.GetProperty("choices")[0]];
        var tokens = new List<string>();
        foreach (var choice in choices)
        {
            if (!choice.TryGetProperty("logprobs", out var logprobs) || logprobs.ValueKind == JsonValueKind.Null) continue;
            if (chat)
            {
                foreach (var t in logprobs.GetProperty("content").EnumerateArray())
                    tokens.Add($"{t.GetProperty("token").GetString()} {t.GetProperty("logprob").GetSingle()} [" +
                               string.Join(", ", t.GetProperty("top_logprobs").EnumerateArray().Select(a => $"{a.GetProperty("token").GetString()} {a.GetProperty("logprob").GetSingle()}")) + "]");
            }
            else
            {
                var texts = logprobs.GetProperty("tokens");
                for (var i = 0; i < texts.GetArrayLength(); i++)
                    tokens.Add($"{texts[i].GetString()} {logprobs.GetProperty("token_logprobs")[i].GetSingle()} [" +
                               string.Join(", ", logprobs.GetProperty("top_logprobs")[i].EnumerateObject().Select(a => $"{a.Name} {a.Value.GetSingle()}")) + "]");
            }
        }
        return tokens;
    }

    [Theory]
    [InlineData(true, false, 2)]
    [InlineData(true, true, 2)]
    [InlineData(true, true, 0)]
    [InlineData(false, false, 3)]
    [InlineData(false, true, 3)]
    [InlineData(false, false, 0)]
    public async Task AnOpenAiUpstreamsLogprobsReachTheClientAsTheUpstreamReportedThem(bool chat, bool stream, int top)
    {
        await using var gateway = await TestGateway.StartAsync([new ScriptedBackend()]);
        var relayed = await TokensAsync(gateway.Http, chat, stream, top);
        var direct = await TokensAsync(gateway.Upstreams[0].Http, chat, stream, top);
        Assert.Equal(10, direct.Count);
        Assert.Equal(direct, relayed);
        Assert.All(relayed, t => Assert.Equal(top, t.Count(c => c == ',') + (t.EndsWith("[]", StringComparison.Ordinal) ? 0 : 1)));
    }

    [Fact]
    public async Task TheTokensListedCountTheCompletionWhenTheUpstreamSendsNoUsage()
    {
        // Whole answers always carry usage; a stream's tokens are counted from the logprobs entries.
        await using var gateway = await TestGateway.StartAsync([new ScriptedBackend()]);
        using var response = await gateway.Http.PostAsync("v1/chat/completions", new StringContent(
            JsonSerializer.Serialize(new
            {
                model = "test-model", max_tokens = 7, temperature = 0, stream = true, logprobs = true, top_logprobs = 1,
                stream_options = new { include_usage = true }, messages = new[] { new { role = "user", content = "Hi" } },
            }), Encoding.UTF8, "application/json"));
        var events = RawHttp.Events(await response.Content.ReadAsStringAsync());
        Assert.Equal(7, JsonDocument.Parse(events[^2]).RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task TgisGenerateStreamServesAnUpstreamModelTokenByTokenWithoutIds()
    {
        // TGI's stream is made of tokens with their log-probabilities: over the OpenAI protocol the
        // gateway asks for logprobs and writes each token, with -1 for the id the protocol does not carry.
        await using var gateway = await TestGateway.StartAsync([new ScriptedBackend()]);
        using var response = await gateway.Http.PostAsync("generate_stream", new StringContent(
            """{"inputs":"Once upon","parameters":{"max_new_tokens":6,"top_n_tokens":2}}""", Encoding.UTF8, "application/json"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        var events = RawHttp.Events(body).Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.Equal(6, events.Count);
        Assert.Equal("Hello ", string.Concat(events.Select(e => e.GetProperty("token").GetProperty("text").GetString())));
        Assert.All(events, e => Assert.Equal(-1, e.GetProperty("token").GetProperty("id").GetInt32()));
        Assert.All(events, e => Assert.Equal(-0.5f, e.GetProperty("token").GetProperty("logprob").GetSingle()));
        Assert.All(events, e => Assert.Equal(2, e.GetProperty("top_tokens").GetArrayLength()));
        Assert.Equal("Hello ", events[^1].GetProperty("generated_text").GetString());
        Assert.Equal("length", events[^1].GetProperty("details").GetProperty("finish_reason").GetString());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ATgiUpstreamsTokensKeepTheirIdsAndAlternatives(bool stream)
    {
        // A TGI pool: logprobs on /v1/completions come from TGI's token objects (and top_tokens), and
        // the gateway's own TGI route shows the upstream's token ids.
        await using var gateway = await TestGateway.StartAsync([new ScriptedBackend()],
            pool: new() { ["Protocol"] = "tgi", ["Models:0"] = "tgi-model" }, basePath: "");
        var request = JsonSerializer.Serialize(new { model = "tgi-model", max_tokens = 8, temperature = 0, stream, logprobs = 2, prompt = "Once upon" });
        using var response = await gateway.Http.PostAsync("v1/completions", new StringContent(request, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        var choices = stream
            ? RawHttp.Events(text).Where(e => e != "[DONE]").Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0]).ToList()
            : [JsonDocument.Parse(text).RootElement.GetProperty("choices")[0]];
        var tokens = choices.SelectMany(c => c.GetProperty("logprobs").GetProperty("tokens").EnumerateArray().Select(t => t.GetString())).ToList();
        Assert.Equal("Hello fr", string.Concat(tokens));
        var alternatives = choices.SelectMany(c => c.GetProperty("logprobs").GetProperty("top_logprobs").EnumerateArray()).ToList();
        Assert.Equal(8, alternatives.Count);
        Assert.All(alternatives, a => Assert.Equal([-0.5f, -1.5f], a.EnumerateObject().Select(p => p.Value.GetSingle())));

        using var tgi = await gateway.Http.PostAsync("generate", new StringContent(
            """{"inputs":"Once upon","parameters":{"max_new_tokens":5,"details":true,"top_n_tokens":1}}""", Encoding.UTF8, "application/json"));
        var details = JsonDocument.Parse(await tgi.Content.ReadAsStringAsync()).RootElement.GetProperty("details");
        Assert.Equal("Hello"u8.ToArray().Select(b => (int)b), details.GetProperty("tokens").EnumerateArray().Select(t => t.GetProperty("id").GetInt32()));
        Assert.All(details.GetProperty("top_tokens").EnumerateArray(), alts => Assert.Equal(1, alts.GetArrayLength()));
    }
}
