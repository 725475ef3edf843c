using System.Text.Json;
using System.Text.RegularExpressions;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Security;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>The <c>speculative</c> request field through the server to the embedded engine, and the <c>bulwark_spec_*</c> metrics.</summary>
public sealed class SpeculativeDecodingServerTests
{
    private static string Chat(string text, string? speculative) =>
        $$"""{"model":"alphabet","max_tokens":40,"temperature":0,"messages":[{"role":"user","content":"{{text}}"}]{{(speculative is null ? "" : ",\"speculative\":" + speculative)}}}""";

    private static long Metric(string text, string name) =>
        Regex.Match(text, "^" + name + @" (\d+)", RegexOptions.Multiline) is { Success: true } m ? long.Parse(m.Groups[1].Value) : -1;

    [Fact]
    public async Task ASpeculativeRequestAnswersTheSameAndTheMetricsCountItsDrafts()
    {
        var backend = AlphabetModel.Backend();
        await using var server = await RunningServer.StartAsync(backend);
        // The model writes the alphabet; the prompt holds it, so prompt lookup drafts exactly what comes next.
        const string prompt = "the alphabet: abcdefghijklmnopqrstuvwxyz";
        var (status, plain, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(prompt, null));
        Assert.Equal(200, status);
        Assert.Equal(0, backend.Engine.Counters.DraftTokens);
        var (specStatus, speculative, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions",
            Chat(prompt, """{"method":"ngram","num_speculative_tokens":5,"prompt_lookup_max":2}"""));
        Assert.Equal(200, specStatus);
        Assert.Equal("abcdefghijklmnopqrstuvwxyz", Content(plain));
        Assert.Equal(Content(plain), Content(speculative));
        Assert.Equal(Usage(plain), Usage(speculative));

        var counters = backend.Engine.Counters;
        Assert.True(counters.AcceptedDraftTokens >= 20, $"only {counters.AcceptedDraftTokens} drafts accepted");
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(10), async () =>
        {
            var metrics = await server.Metrics.GetStringAsync("metrics");
            return Metric(metrics, "bulwark_spec_draft_tokens_total") == counters.DraftTokens
                && Metric(metrics, "bulwark_spec_accepted_tokens_total") == counters.AcceptedDraftTokens
                && Metric(metrics, "bulwark_spec_verification_steps_total") == counters.Verifications
                && metrics.Contains("bulwark_spec_acceptance_ratio ");
        }), "the bulwark_spec_* metrics do not show the engine's counts");

        // "none" turns speculation off for the request.
        var drafted = counters.DraftTokens;
        var (offStatus, off, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(prompt, """{"method":"none"}"""));
        Assert.Equal(200, offStatus);
        Assert.Equal(Content(plain), Content(off));
        Assert.Equal(drafted, counters.DraftTokens);
    }

    [Fact]
    public async Task TheCompletionsRouteTakesTheFieldToo()
    {
        var backend = AlphabetModel.Backend();
        await using var server = await RunningServer.StartAsync(backend);
        var (status, body, _) = await RawHttp.PostJsonAsync(server.Http, "v1/completions",
            """{"model":"alphabet","prompt":"xyz abcdefghij: a","max_tokens":8,"temperature":0,"speculative":{"num_speculative_tokens":3}}""");
        Assert.Equal(200, status);
        Assert.Equal("bcdefghi", body.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.True(backend.Engine.Counters.AcceptedDraftTokens > 0);
    }

    private static string? Content(JsonElement body) => body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString();

    private static string Usage(JsonElement body) => body.GetProperty("usage").GetRawText();
}
