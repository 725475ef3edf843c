using System.Text.Json;
using Bulwark.Server.Backends;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Hosting;

namespace Bulwark.Server.Tests.Spine;

/// <summary>The order of the spine's stages and what one backend call per request gives, seen through a real server.</summary>
public sealed class GenerationSpineTests
{
    private static string Chat(string content, object? extra = null)
    {
        var body = new Dictionary<string, object?>
        {
            ["model"] = "test-model", ["max_tokens"] = 3, ["temperature"] = 0,
            ["messages"] = new[] { new { role = "user", content } },
        };
        foreach (var p in extra?.GetType().GetProperties() ?? []) body[p.Name] = p.GetValue(extra);
        return JsonSerializer.Serialize(body);
    }

    private static async Task<long> GuardVerdictsAsync(RunningServer server) =>
        (await server.Metrics.GetStringAsync("metrics")).Split('\n')
            .Where(l => l.StartsWith("bulwark_guard_verdicts_total{", StringComparison.Ordinal))
            .Sum(l => long.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));

    [Fact]
    public async Task ARequestOverItsRateLimitIsRefusedBeforeAnyScanTemplateOrTokenization()
    {
        var backend = new ScriptedBackend();
        await using var server = await RunningServer.StartAsync(backend, new() { ["Bulwark:Guardrails:Input:Policy"] = "flag" });
        await server.Metrics.GetStringAsync("metrics"); // the exposition starts listening at the first scrape
        var key = (await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "one-a-minute", Limits = new KeyLimits(1, 0, 0, 0) }, "tests")).Key;
        using var client = server.Client(key);

        Assert.Equal(200, (await RawHttp.PostJsonAsync(client, "v1/chat/completions", Chat("What is 2+2?"))).Status);
        Assert.Equal(1, backend.PreparedPrompts);
        Assert.Equal(1, await GuardVerdictsAsync(server));

        // Over the limit, with an out-of-range field too: the rate limit answers first, before the contract.
        var (status, body, response) = await RawHttp.PostJsonAsync(client, "v1/chat/completions", Chat("And 3+3?", new { temperature = 5 }));
        Assert.Equal(429, status);
        Assert.Equal("requests", RawHttp.Error(body).GetProperty("code").GetString());
        Assert.True(response.Headers.Contains("x-ratelimit-remaining-requests"));
        Assert.True(response.Headers.RetryAfter is not null);
        // Neither scanned nor templated nor tokenized.
        Assert.Equal(1, backend.PreparedPrompts);
        Assert.Equal(1, await GuardVerdictsAsync(server));
        Assert.Equal(1, backend.StartedSequences);
    }

    [Fact]
    public async Task AKeyWithoutTheModelIsRefusedBeforeItsBodyIsValidated()
    {
        var backend = new ScriptedBackend();
        await using var server = await RunningServer.StartAsync(backend);
        var key = (await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "other-model", Models = ["another-model"] }, "tests")).Key;
        using var client = server.Client(key);

        var (status, body, _) = await RawHttp.PostJsonAsync(client, "v1/chat/completions", Chat("hi", new { temperature = 5 }));
        Assert.Equal(404, status);
        Assert.Equal("model_not_found", RawHttp.Error(body).GetProperty("code").GetString());
        Assert.Equal(0, backend.PreparedPrompts);
    }

    [Fact]
    public async Task ATokenQuotaRefusalComesAfterThePromptIsCountedAndFreesTheConcurrencySlot()
    {
        var backend = new ScriptedBackend();
        await using var server = await RunningServer.StartAsync(backend);
        // 60 tokens a minute and one request at a time: a 3-token completion of a long prompt cannot fit.
        var key = (await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "small", Limits = new KeyLimits(0, 60, 0, 1) }, "tests")).Key;
        using var client = server.Client(key);

        var (status, body, _) = await RawHttp.PostJsonAsync(client, "v1/chat/completions", Chat(new string('x', 80)));
        Assert.Equal(429, status);
        Assert.Equal("tokens", RawHttp.Error(body).GetProperty("code").GetString());
        Assert.Contains("Request too large", RawHttp.Error(body).GetProperty("message").GetString());
        Assert.Equal(1, backend.PreparedPrompts);
        Assert.Equal(0, backend.StartedSequences);
        // The refused request's concurrency slot is free again: a small request goes through at once.
        Assert.Equal(200, (await RawHttp.PostJsonAsync(client, "v1/chat/completions", Chat("hi"))).Status);
    }

    [Fact]
    public async Task AnNChoiceRequestIsOneBackendCallWhoseChoicesTheGuardEndsOneByOne()
    {
        var secret = "my token is ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5 and more text after it";
        var backend = new ScriptedBackend { ChoiceReplies = ["plain words, nothing to see here. ", secret, "more plain words. "] };
        await using var server = await RunningServer.StartAsync(backend, new() { ["Bulwark:Guardrails:Output:Mode"] = "block" });

        var (status, body, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat("hi", new { n = 3, max_tokens = 60 }));
        Assert.Equal(200, status);
        var choices = body.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal(["length", "content_filter", "length"], choices.Select(c => c.GetProperty("finish_reason").GetString()));
        Assert.Equal("my token is ", choices[1].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(60, choices[0].GetProperty("message").GetProperty("content").GetString()!.Length);

        // One call for the three choices, and the blocked one was stopped at the backend, not left to run.
        var call = Assert.Single(backend.Requests);
        Assert.True(call.Choices.IsStopped(1));
        Assert.False(call.Choices.IsStopped(0) || call.Choices.IsStopped(2));
        Assert.Equal(3, backend.StartedSequences);
        Assert.Equal(0, backend.ActiveSequences);
        // Usage counts what was computed: two full choices and the blocked one up to where it was stopped.
        var completion = body.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.InRange(completion, 120 + "my token is ghp_".Length, 120 + secret.Length);
    }

    [Fact]
    public async Task AnN3RequestPrefillsItsPromptOnce()
    {
        var backend = AlphabetModel.Backend();
        await using var server = await RunningServer.StartAsync(backend);
        var request = JsonSerializer.Serialize(new { model = "alphabet", prompt = "the quick brown fox and a dog", n = 3, max_tokens = 2, temperature = 0 });

        var (status, body, _) = await RawHttp.PostJsonAsync(server.Http, "v1/completions", request);

        Assert.Equal(200, status);
        Assert.Equal(["hi", "hi", "hi"], body.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("text").GetString()));
        var prompt = body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32();
        Assert.Equal(6, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        var counters = backend.Engine.Counters;
        // The prompt entered the engine once, and the forward passes computed it once: one prefill of the
        // prompt, then one decode step of the three forked choices.
        Assert.Equal(prompt, counters.PromptTokens);
        Assert.Equal(prompt + 3, counters.BatchedTokens);
    }

    [Fact]
    public async Task ARequestRefusedByAFullQueueIsNotChargedItsReservation()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var backend = new ScriptedBackend(contextLength: 4096) { BeforeEachToken = ct => gate.Task.WaitAsync(ct) };
        await using var server = await RunningServer.StartAsync(backend, new()
        {
            ["Bulwark:Admission:MaxConcurrentRequests"] = "1",
            ["Bulwark:Admission:MaxQueueLength"] = "0",
        });
        var key = (await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "tokens", Limits = new KeyLimits(0, 6000, 0, 0) }, "tests")).Key;
        using var client = server.Client(key);

        var holding = RawHttp.PostJsonAsync(client, "v1/chat/completions", Chat("hi"));
        for (var i = 0; i < 1000 && backend.ActiveSequences == 0; i++) await Task.Delay(5);
        Assert.Equal(1, backend.ActiveSequences);
        // Reserves about 2,000 tokens, then finds the queue full.
        var (refused, body, _) = await RawHttp.PostJsonAsync(client, "v1/chat/completions", Chat("hi", new { max_tokens = 2000 }));
        Assert.Equal(429, refused);
        Assert.Equal("queue_full", RawHttp.Error(body).GetProperty("code").GetString());
        gate.SetResult();
        Assert.Equal(200, (await holding).Status);

        var (status, _, response) = await RawHttp.PostJsonAsync(client, "v1/chat/completions", Chat("hi", new { max_tokens = 1 }));
        Assert.Equal(200, status);
        // Charged: the first request (prompt + 3) and this one's reservation, a few dozen tokens; the refused
        // request's 2,000 came back when it was refused.
        var remaining = long.Parse(response.Headers.GetValues("x-ratelimit-remaining-tokens").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(remaining, 5900, 6000);
    }

    [Fact]
    public async Task AGenerationRouteMadePublicStillNeedsAKey()
    {
        var backend = new ScriptedBackend();
        await using var server = await RunningServer.StartAsync(backend, new() { ["Bulwark:Security:PublicPaths:0"] = "/v1/chat/completions" });
        using var anonymous = server.Client(null);

        var (status, body, _) = await RawHttp.PostJsonAsync(anonymous, "v1/chat/completions", Chat("hi"));

        Assert.Equal(401, status);
        Assert.Equal("invalid_api_key", RawHttp.Error(body).GetProperty("code").GetString());
        Assert.Equal(0, backend.PreparedPrompts);
    }
}
