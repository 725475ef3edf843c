using System.Net;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Security;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>The real server composition with its security front: identity, policy and output guard in the spine.</summary>
public sealed class SecuredServerTests
{
    private const string Chat = """{"model":"test-model","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"temperature":0}""";

    [Fact]
    public async Task EveryRouteOfTheRealServerNeedsCredentialsWithTheRightScope()
    {
        await using var server = await RunningServer.StartAsync(new ScriptedBackend { EndAfter = 2 });
        var admin = await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "admin", IsAdmin = true }, "test");

        var probes = RouteAuthenticationAudit.Enumerate(server.App.Services);
        Assert.Contains(probes, p => p.Path == "/v1/chat/completions");
        Assert.Contains(probes, p => p.Path == "/generate_stream");
        Assert.Contains(probes, p => p.Path.StartsWith("/admin/", StringComparison.Ordinal));
        var results = await RouteAuthenticationAudit.RunAsync(server.Address, probes, server.ApiKey!, admin.Key);
        foreach (var (probe, anonymous, wrongScope) in results)
        {
            if (probe.Path is "/health" or "/ready")
            {
                Assert.True(anonymous == HttpStatusCode.OK, $"{probe.Path} answered {anonymous} without credentials");
                continue;
            }
            // The console's routes answer to a session, not a key (ConsoleSessionTests.EveryConsoleRouteButSignInAndAssetsRefusesWithoutASession).
            if (probe.SessionRoute) continue;
            Assert.True(anonymous == HttpStatusCode.Unauthorized, $"{probe.Method} {probe.Path} answered {anonymous} without credentials");
            Assert.True(wrongScope == HttpStatusCode.Forbidden, $"{probe.Method} {probe.Path} answered {wrongScope} to a key without '{probe.Scope}'");
        }
        // /metrics answers an admin key, and an inference key is refused above.
        using var metrics = await server.Client(admin.Key).GetAsync("metrics");
        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
    }

    [Fact]
    public async Task AModelAKeyMayNotUseAnswersAsOneThatDoesNotExist()
    {
        var backend = new ScriptedBackend();
        await using var server = await RunningServer.StartAsync(backend);
        var limited = await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "limited", Models = ["other-model"] }, "test");
        var allowed = await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "allowed", Models = ["test-model"] }, "test");

        var (status, body, _) = await RawHttp.PostJsonAsync(server.Client(limited.Key), "v1/chat/completions", Chat);
        Assert.Equal(404, status);
        var error = RawHttp.Error(body);
        Assert.Equal("model_not_found", error.GetProperty("code").GetString());
        Assert.Contains("'test-model' does not exist or this key may not use it", error.GetProperty("message").GetString());
        Assert.Contains("no model is available to this key", error.GetProperty("message").GetString());
        Assert.Equal(0, backend.StartedSequences);
        // Nor does the key see it listed, fetch it or tokenize with it.
        var listed = await server.Client(limited.Key).GetStringAsync("v1/models");
        Assert.DoesNotContain("test-model", listed);
        Assert.Equal(404, (int)(await server.Client(limited.Key).GetAsync("v1/models/test-model")).StatusCode);
        Assert.Equal(404, (await RawHttp.PostJsonAsync(server.Client(limited.Key), "tokenize", "{\"model\":\"test-model\",\"prompt\":\"hi\"}")).Status);
        Assert.Equal(404, (await RawHttp.PostJsonAsync(server.Client(limited.Key), "generate", "{\"inputs\":\"hi\"}")).Status);
        Assert.Contains("test-model", await server.Client(allowed.Key).GetStringAsync("v1/models"));

        Assert.Equal(200, (await RawHttp.PostJsonAsync(server.Client(allowed.Key), "v1/chat/completions", Chat)).Status);
    }

    [Fact]
    public async Task RequestsPerMinuteLimitAnswers429WithRetryAfterAndRateLimitHeaders()
    {
        var backend = new ScriptedBackend();
        await using var server = await RunningServer.StartAsync(backend);
        var key = await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "slow", Limits = new KeyLimits(2, 0, 0, 0) }, "test");
        using var client = server.Client(key.Key);

        var statuses = new List<int>();
        HttpResponseMessage? last = null;
        for (var i = 0; i < 3; i++)
        {
            var (status, _, response) = await RawHttp.PostJsonAsync(client, "v1/chat/completions", Chat);
            statuses.Add(status);
            last = response;
        }
        Assert.Equal([200, 200, 429], statuses);
        Assert.NotNull(last!.Headers.RetryAfter);
        Assert.Equal("2", last.Headers.GetValues("x-ratelimit-limit-requests").Single());
        Assert.Equal(2, backend.StartedSequences);
        var scrape = await server.Client(null).GetAsync("metrics");
        Assert.Equal(HttpStatusCode.Unauthorized, scrape.StatusCode);
    }

    [Fact]
    public async Task TokenizeAndDetokenizeCountAgainstTheKeysRequestsPerMinute()
    {
        await using var server = await RunningServer.StartAsync(new ScriptedBackend());
        var key = await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "tok", Limits = new KeyLimits(3, 0, 0, 0) }, "test");
        using var client = server.Client(key.Key);

        var (status, tokenized, _) = await RawHttp.PostJsonAsync(client, "tokenize", """{"model":"test-model","prompt":"hi"}""");
        Assert.Equal(200, status);
        var ids = string.Join(",", tokenized.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()));
        Assert.Equal(200, (await RawHttp.PostJsonAsync(client, "detokenize", $$"""{"model":"test-model","tokens":[{{ids}}]}""")).Status);
        Assert.Equal(200, (await RawHttp.PostJsonAsync(client, "tokenize", """{"prompt":"hi"}""")).Status);
        // The fourth call of the minute, whichever route, is refused as generation would be.
        var (refused, error, response) = await RawHttp.PostJsonAsync(client, "detokenize", $$"""{"tokens":[{{ids}}]}""");
        Assert.Equal(429, refused);
        Assert.Equal("rate_limit_exceeded", RawHttp.Error(error).GetProperty("type").GetString());
        Assert.Equal("requests", RawHttp.Error(error).GetProperty("code").GetString());
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Equal(429, (await RawHttp.PostJsonAsync(client, "v1/chat/completions", Chat)).Status);
    }

    [Fact]
    public async Task TokensPerMinuteReservationCountsPromptPlusEveryChoicesMaxTokens()
    {
        var backend = new ScriptedBackend();
        await using var server = await RunningServer.StartAsync(backend);
        // The prompt "<user>hi\n<assistant>" is 20 tokens; 20 + 2 × 4 = 28 fits a limit of 28, 29 does not.
        var fits = await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "fits", Limits = new KeyLimits(0, 28, 0, 0) }, "test");
        var tight = await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "tight", Limits = new KeyLimits(0, 27, 0, 0) }, "test");
        var body = Chat.Replace("\"max_tokens\":4", "\"max_tokens\":4,\"n\":2");

        Assert.Equal(200, (await RawHttp.PostJsonAsync(server.Client(fits.Key), "v1/chat/completions", body)).Status);
        var (status, error, _) = await RawHttp.PostJsonAsync(server.Client(tight.Key), "v1/chat/completions", body);
        Assert.Equal(429, status);
        Assert.Contains("needs 28 tokens", RawHttp.Error(error).GetProperty("message").GetString());
    }

    [Fact]
    public async Task SecretsInGeneratedTextAreRedactedStreamedOrNot()
    {
        const string secret = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
        var backend = new ScriptedBackend { Reply = $"token {secret} end. " };
        await using var server = await RunningServer.StartAsync(backend);
        var body = Chat.Replace("\"max_tokens\":4", "\"max_tokens\":52");

        var (status, whole, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", body);
        Assert.Equal(200, status);
        var content = whole.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
        Assert.DoesNotContain(secret, content);
        Assert.Equal("token [REDACTED:github-token] end. ", content);

        var streamed = await (await server.Http.PostAsync("v1/chat/completions",
            new StringContent(body.Replace("\"temperature\":0", "\"temperature\":0,\"stream\":true"), System.Text.Encoding.UTF8, "application/json"))).Content.ReadAsStringAsync();
        Assert.DoesNotContain("ghp_0123", streamed);
        Assert.Contains("REDACTED:github-token", streamed);
    }
}
