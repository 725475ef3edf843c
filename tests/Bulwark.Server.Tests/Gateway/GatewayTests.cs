using System.Text.Json;
using Bulwark.Server.Audit;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Hosting;
using Bulwark.Server.Tests.Security;
using Microsoft.Extensions.DependencyInjection;

namespace Bulwark.Server.Tests.Gateway;

/// <summary>Bulwark in front of other engines: relaying, security on forwarded traffic, and the failures it survives.</summary>
public sealed class GatewayTests
{
    private static string Chat(int maxTokens = 8, bool stream = false, int n = 1) => JsonSerializer.Serialize(new
    {
        model = "test-model", max_tokens = maxTokens, temperature = 0, n, stream,
        messages = new[] { new { role = "user", content = "Hello there" } },
    });

    private static async Task Until(Func<bool> condition, string what)
    {
        for (var i = 0; i < 2000 && !condition(); i++) await Task.Delay(10);
        Assert.True(condition(), $"timed out waiting until {what}");
    }

    private static async Task<string> MetricsAsync(TestGateway gateway) => await gateway.Metrics.GetStringAsync("metrics");

    [Fact]
    public async Task TheGatewayServesTheUpstreamsModelsWithItsOwnKeysUsageAndAudit()
    {
        var backend = new ScriptedBackend();
        await using var gateway = await TestGateway.StartAsync([backend]);

        Assert.Contains("upstream   pool gpu: 1 of 1 endpoint(s) up", gateway.Output);
        var models = JsonDocument.Parse(await gateway.Http.GetStringAsync("v1/models")).RootElement.GetProperty("data");
        var model = Assert.Single(models.EnumerateArray());
        Assert.Equal("test-model", model.GetProperty("id").GetString());
        Assert.Equal("upstream:gpu", model.GetProperty("owned_by").GetString());
        Assert.Equal(256, model.GetProperty("max_model_len").GetInt32());

        // The same text as asking the upstream directly, with the upstream's usage.
        var (status, body, _) = await RawHttp.PostJsonAsync(gateway.Http, "v1/chat/completions", Chat(n: 2));
        Assert.Equal(200, status);
        var direct = (await RawHttp.PostJsonAsync(gateway.Upstreams[0].Http, "v1/chat/completions", Chat(n: 2))).Body;
        Assert.Equal(direct.GetProperty("choices").GetRawText(), body.GetProperty("choices").GetRawText());
        Assert.Equal(direct.GetProperty("usage").GetRawText(), body.GetProperty("usage").GetRawText());

        // Streaming relays chunk by chunk, ending with usage and [DONE].
        var streamed = await (await gateway.Http.PostAsync("v1/chat/completions", new StringContent(
            JsonSerializer.Serialize(new { model = "test-model", max_tokens = 8, temperature = 0, stream = true, stream_options = new { include_usage = true }, messages = new[] { new { role = "user", content = "Hi" } } }),
            System.Text.Encoding.UTF8, "application/json"))).Content.ReadAsStringAsync();
        var events = RawHttp.Events(streamed);
        Assert.Equal("[DONE]", events[^1]);
        var text = string.Concat(events.SkipLast(2).Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var c) ? c.GetString() : ""));
        Assert.Equal("Hello fr", text);
        Assert.Equal(8, JsonDocument.Parse(events[^2]).RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        // The gateway's own keys: the upstream's key is refused here, an unknown key too.
        Assert.Equal(401, (await RawHttp.PostJsonAsync(gateway.Client(gateway.UpstreamKey), "v1/chat/completions", Chat())).Status);

        // The audit record names the endpoint; nothing the gateway writes holds the upstream's key.
        var services = gateway.Host.App.Services;
        await services.GetRequiredService<AuditWriter>().FlushAsync();
        var records = await services.GetRequiredService<SecurityStorage>().Audit.ReadRecentAsync(50, AuditRecord.RequestKind);
        var forwarded = records.Where(r => r.Route == "POST /v1/chat/completions" && r.Status == 200).ToList();
        Assert.NotEmpty(forwarded);
        Assert.All(forwarded, r => Assert.Equal($"http://127.0.0.1:{gateway.Proxies[0].Address().Port}", r.Upstream));
        Assert.All(forwarded, r => Assert.True(r.PromptTokens > 0 && r.CompletionTokens > 0));
        var everything = string.Join('\n', gateway.Logs.Lines) + gateway.Output + JsonSerializer.Serialize(records) + await MetricsAsync(gateway) + body.GetRawText() + streamed;
        Assert.DoesNotContain(gateway.UpstreamKey, everything);
    }

    [Fact]
    public async Task TheRequestsDeadlineEndsAForwardedStreamAndFreesTheUpstreamsSequence()
    {
        var tokens = 0;
        var backend = new ScriptedBackend
        {
            BeforeEachToken = async ct =>
            {
                if (Interlocked.Increment(ref tokens) > 2) await Task.Delay(Timeout.Infinite, ct);
            },
        };
        await using var gateway = await TestGateway.StartAsync([backend]);
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { model = "test-model", max_tokens = 50, temperature = 0, stream = true, messages = new[] { new { role = "user", content = "Hi" } } }),
                System.Text.Encoding.UTF8, "application/json"),
        };
        request.Headers.Add(Bulwark.Server.Requests.RequestDeadline.Header, "1");
        using var response = await gateway.Http.SendAsync(request);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        var events = RawHttp.Events(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        var last = JsonDocument.Parse(events[^2]).RootElement.GetProperty("choices")[0];
        Assert.Equal("length", last.GetProperty("finish_reason").GetString());
        Assert.Equal("deadline", last.GetProperty("stop_reason").GetString());
        var text = string.Concat(events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var c) ? c.GetString() : ""));
        // What the upstream relayed of its two tokens (its own output guard may still hold the tail of an unfinished stream).
        Assert.StartsWith(text, "He", StringComparison.Ordinal);
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(10), () => Task.FromResult(backend.ActiveSequences == 0)),
            "the upstream still computed the sequence after the gateway's deadline passed");
    }

    [Fact]
    public async Task WithTheModelsTokenizerConfiguredPromptsAreCountedExactlyAndTokenizeWorks()
    {
        var file = Path.Combine(Bulwark.Testing.Fixtures.NewTempDirectory("tokenizer"), "model.gguf");
        Bulwark.Engine.Synthesis.SyntheticModel.WriteGguf(new Bulwark.Engine.Synthesis.SyntheticModelSpec
            { Layers = 1, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 128, Vocab = 512, Context = 128, Seed = 1,
              ChatTemplate = Bulwark.Engine.Synthesis.SyntheticModel.ChatMlTemplate }, file);
        var backend = new ScriptedBackend();
        await using var gateway = await TestGateway.StartAsync([backend], pool: new() { ["Tokenizers:test-model"] = file });
        var local = Bulwark.Engine.Tokenizers.Loading.TokenizerLoader.FromPath(file);

        // /tokenize answers with the model's own tokenizer, without asking the upstream.
        var (status, body, _) = await RawHttp.PostJsonAsync(gateway.Http, "tokenize", """{"model":"test-model","prompt":"the cat sat on the mat"}""");
        Assert.Equal(200, status);
        Assert.Equal(local.Encode("the cat sat on the mat", addSpecial: true), body.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()));

        // The context check runs on the exact count (the upstream reports 256): a prompt that does not fit never leaves the gateway.
        var words = string.Join(' ', Enumerable.Repeat("the cat sat on the mat", 60));
        var (tooLong, error, _) = await RawHttp.PostJsonAsync(gateway.Http, "v1/chat/completions",
            JsonSerializer.Serialize(new { model = "test-model", max_tokens = 8, messages = new[] { new { role = "user", content = words } } }));
        Assert.Equal(400, tooLong);
        Assert.Equal("context_length_exceeded", RawHttp.Error(error).GetProperty("code").GetString());
        Assert.Equal(0, backend.PreparedPrompts);
        Assert.Equal(200, (await RawHttp.PostJsonAsync(gateway.Http, "v1/chat/completions", Chat())).Status);
    }

    [Fact]
    public async Task AnEndpointThatResetsConnectionsIsRetriedOnAnotherBeforeTheClientSeesAByte()
    {
        var healthy = new ScriptedBackend();
        await using var gateway = await TestGateway.StartAsync([new ScriptedBackend(), healthy],
            pool: new() { ["HealthInterval"] = "00:10:00", ["BreakerMinimumThroughput"] = "100" });
        gateway.Proxies[0].Mode = FaultProxy.Fault.Reset;

        for (var i = 0; i < 6; i++)
            Assert.Equal(200, (await RawHttp.PostJsonAsync(gateway.Http, "v1/chat/completions", Chat())).Status);

        Assert.Equal(6, healthy.StartedSequences);
        var metrics = await MetricsAsync(gateway);
        Assert.Contains("bulwark_upstream_retries_total{endpoint=\"http://127.0.0.1:" + gateway.Proxies[0].Address().Port + "\",pool=\"gpu\"}", metrics);
        Assert.Contains("outcome=\"connect_error\"", metrics);
    }

    [Fact]
    public async Task WithAQueueMetricTheBalancerAvoidsAnEndpointWhoseOwnQueueIsLong()
    {
        // Upstream A runs one request at a time and three more wait in its admission queue (sent to it directly).
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var busy = new ScriptedBackend { BeforeEachToken = ct => gate.Task.WaitAsync(ct) };
        var idle = new ScriptedBackend();
        const string metricsToken = "upstream-metrics-token-0123456789abcdef0123456789";
        var variable = "BULWARK_TEST_METRICS_TOKEN_" + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(variable, metricsToken);
        await using var gateway = await TestGateway.StartAsync([busy, idle],
            pool: new() { ["QueueMetric"] = "bulwark_admission_waiting", ["MetricsKeyEnv"] = variable },
            upstream: new() { ["Bulwark:Security:MetricsToken"] = metricsToken, ["Bulwark:Admission:MaxConcurrentRequests"] = "1" });
        var direct = Enumerable.Range(0, 4).Select(_ => RawHttp.PostJsonAsync(gateway.Upstreams[0].Http, "v1/chat/completions", Chat())).ToList();
        var queued = $"bulwark_upstream_queued{{endpoint=\"http://127.0.0.1:{gateway.Proxies[0].Address().Port}\",pool=\"gpu\"}} 3";
        await Until(() => MetricsAsync(gateway).GetAwaiter().GetResult().Contains(queued, StringComparison.Ordinal), "the gateway reads A's queue");

        // Round-robin on in-flight requests alone would send half of these to A, where they would wait behind the queue.
        for (var i = 0; i < 4; i++)
            Assert.Equal(200, (await RawHttp.PostJsonAsync(gateway.Http, "v1/chat/completions", Chat())).Status);
        Assert.Equal(4, idle.StartedSequences);
        Assert.Equal(1, busy.StartedSequences);

        gate.SetResult();
        Assert.All(await Task.WhenAll(direct), r => Assert.Equal(200, r.Status));
    }

    [Theory]
    [InlineData("vllm:num_requests_waiting", 5)]
    [InlineData("bulwark_admission_waiting", 3)]
    [InlineData("absent_metric", 0)]
    public void TheQueueGaugeIsTheSumOfItsSeries(string metric, double expected)
    {
        const string page = """
            # HELP vllm:num_requests_waiting Number of requests waiting to be processed.
            # TYPE vllm:num_requests_waiting gauge
            vllm:num_requests_waiting{model_name="llama"} 2.0
            vllm:num_requests_waiting{model_name="qwen",engine="0"} 3
            vllm:num_requests_waiting_total 99
            bulwark_admission_waiting 3 1733562000000
            """;
        Assert.Equal(expected, Bulwark.Server.Backends.Upstream.PrometheusGauge.Sum(page, metric));
    }

    [Fact]
    public async Task AnEndpointThatNeverAnswersTimesOutAndTheRequestGoesToAnother()
    {
        var healthy = new ScriptedBackend();
        await using var gateway = await TestGateway.StartAsync([new ScriptedBackend(), healthy],
            pool: new() { ["FirstByteTimeout"] = "00:00:01", ["HealthInterval"] = "00:10:00" });
        gateway.Proxies[0].Mode = FaultProxy.Fault.BlackHole;

        for (var i = 0; i < 3; i++)
            Assert.Equal(200, (await RawHttp.PostJsonAsync(gateway.Http, "v1/chat/completions", Chat())).Status);

        Assert.Equal(3, healthy.StartedSequences);
        Assert.Contains("outcome=\"timeout\"", await MetricsAsync(gateway));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AnEndpointAnsweringGarbageIsRetriedOnAnother(bool stream)
    {
        var healthy = new ScriptedBackend();
        await using var gateway = await TestGateway.StartAsync([new ScriptedBackend(), healthy],
            pool: new() { ["HealthInterval"] = "00:10:00", ["BreakerMinimumThroughput"] = "100" });
        gateway.Proxies[0].Mode = FaultProxy.Fault.Garbage;

        for (var i = 0; i < 4; i++)
        {
            var response = await gateway.Http.PostAsync("v1/chat/completions", new StringContent(Chat(stream: stream), System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(200, (int)response.StatusCode);
            Assert.DoesNotContain("garbage", await response.Content.ReadAsStringAsync());
        }
        Assert.Equal(4, healthy.StartedSequences);
    }

    [Fact]
    public async Task AnEndpointThatDripsItsAnswerPastTheIdleTimeoutIsLeftForAnother()
    {
        var healthy = new ScriptedBackend();
        await using var gateway = await TestGateway.StartAsync([new ScriptedBackend(), healthy],
            pool: new() { ["HealthInterval"] = "00:10:00", ["IdleTimeout"] = "00:00:01", ["BreakerMinimumThroughput"] = "100" });
        gateway.Proxies[0].Mode = FaultProxy.Fault.SlowDrip;

        for (var i = 0; i < 3; i++)
        {
            var response = await gateway.Http.PostAsync("v1/chat/completions", new StringContent(Chat(stream: true), System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(200, (int)response.StatusCode);
            Assert.Equal("[DONE]", RawHttp.Events(await response.Content.ReadAsStringAsync())[^1]);
        }
        Assert.Equal(3, healthy.StartedSequences);
        Assert.Contains("outcome=\"timeout\"", await MetricsAsync(gateway));
    }

    [Fact]
    public async Task AnEndpointAnswering500sOpensItsBreakerThenRecoversThroughAHalfOpenProbe()
    {
        var failing = new ScriptedBackend { Fail = true };
        var healthy = new ScriptedBackend();
        await using var gateway = await TestGateway.StartAsync([failing, healthy], pool: new() { ["BreakDuration"] = "00:00:05" });
        var endpoint = $"endpoint=\"http://127.0.0.1:{gateway.Proxies[0].Address().Port}\"";
        string Line(string metrics, string name) => metrics.Split('\n').FirstOrDefault(l => l.StartsWith($"{name}{{{endpoint}", StringComparison.Ordinal)) ?? "";

        // A 500 is not retried (only connection failures, timeouts, 429/502/503/504 are): the client gets a 502
        // without the upstream's body, until the failing endpoint's circuit opens.
        var refused = 0;
        for (var i = 0; i < 50 && Line(await MetricsAsync(gateway), "bulwark_upstream_breaker_opened_total") == ""; i++)
        {
            var (status, body, _) = await RawHttp.PostJsonAsync(gateway.Http, "v1/chat/completions", Chat());
            if (status == 200) continue;
            Assert.Equal(502, status);
            Assert.Equal("upstream_failed", RawHttp.Error(body).GetProperty("code").GetString());
            Assert.DoesNotContain("internal_error", RawHttp.Error(body).GetProperty("message").GetString());
            refused++;
        }
        Assert.InRange(refused, 2, 50);
        Assert.EndsWith(" 2", Line(await MetricsAsync(gateway), "bulwark_upstream_breaker_state"));
        // While open, the endpoint is not tried at all.
        var tried = failing.PreparedPrompts;
        for (var i = 0; i < 4; i++)
            Assert.Equal(200, (await RawHttp.PostJsonAsync(gateway.Http, "v1/chat/completions", Chat())).Status);
        Assert.Equal(tried, failing.PreparedPrompts);

        // The endpoint heals; once the break is over a probe goes through, succeeds, and the circuit closes.
        failing.Fail = false;
        await Until(() => SendOne(gateway) && failing.StartedSequences > 0, "a request is served by the healed endpoint");
        Assert.EndsWith(" 0", Line(await MetricsAsync(gateway), "bulwark_upstream_breaker_state"));
    }

    /// <summary>
    /// Whether one request is served now: a polling condition, so a request that fails on the wire (under a loaded
    /// suite the client's connection to the gateway was once reset while the proxies healed) counts as "not yet".
    /// </summary>
    private static bool SendOne(TestGateway gateway)
    {
        try
        {
            return RawHttp.PostJsonAsync(gateway.Http, "v1/chat/completions", Chat()).GetAwaiter().GetResult().Status == 200;
        }
        catch (Exception e) when (e is HttpRequestException or System.Net.Sockets.SocketException or IOException)
        {
            return false;
        }
    }

    [Fact]
    public async Task AStreamCutAfterItsFirstTokensEndsWithAnErrorEventAndIsNotRetried()
    {
        var backend = new ScriptedBackend();
        await using var gateway = await TestGateway.StartAsync([backend], pool: new() { ["HealthInterval"] = "00:10:00" });
        gateway.Proxies[0].Mode = FaultProxy.Fault.CutResponse;
        gateway.Proxies[0].CutAfterBytes = 900; // the response head and a few chunks

        var response = await gateway.Http.PostAsync("v1/chat/completions", new StringContent(Chat(maxTokens: 200, stream: true), System.Text.Encoding.UTF8, "application/json"));
        var events = RawHttp.Events(await response.Content.ReadAsStringAsync());

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("[DONE]", events[^1]);
        var error = JsonDocument.Parse(events[^2]).RootElement.GetProperty("error");
        Assert.Equal("upstream_failed", error.GetProperty("code").GetString());
        Assert.Contains("content", events[0]);
        // Tokens had reached the client: no second attempt anywhere.
        Assert.Equal(1, backend.StartedSequences);
    }

    [Fact]
    public async Task AClientThatLeavesCancelsTheUpstreamRequest()
    {
        var backend = new ScriptedBackend { BeforeEachToken = ct => Task.Delay(20, ct) };
        await using var gateway = await TestGateway.StartAsync([backend]);

        using (var response = await gateway.Http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
               {
                   Content = new StringContent(Chat(maxTokens: 200, stream: true), System.Text.Encoding.UTF8, "application/json"),
               }, HttpCompletionOption.ResponseHeadersRead))
        {
            await using var stream = await response.Content.ReadAsStreamAsync();
            await stream.ReadExactlyAsync(new byte[64]);
            Assert.Equal(1, backend.ActiveSequences);
        }
        await Until(() => backend.ActiveSequences == 0, "the upstream's sequence is freed");
        Assert.True(backend.StartedSequences == 1);
    }

    [Fact]
    public async Task AKeyThatMayNotUseTheUpstreamModelIsNotForwarded()
    {
        var backend = new ScriptedBackend();
        await using var gateway = await TestGateway.StartAsync([backend]);
        var limited = (await gateway.Host.App.Services.GetRequiredService<KeyIssuer>().CreateAsync(new KeySpec { Name = "other", Models = ["other-model"] }, "tests")).Key;
        using var client = gateway.Client(limited);

        var (status, body, _) = await RawHttp.PostJsonAsync(client, "v1/chat/completions", Chat());
        Assert.Equal(404, status);
        Assert.Equal("model_not_found", RawHttp.Error(body).GetProperty("code").GetString());
        Assert.DoesNotContain("test-model", await client.GetStringAsync("v1/models"));
        Assert.Equal(0, backend.PreparedPrompts);
    }

    [Fact]
    public async Task WhenEveryEndpointIsDownTheClientGetsAFast503WithRetryAfter()
    {
        await using var gateway = await TestGateway.StartAsync([new ScriptedBackend(), new ScriptedBackend()]);
        foreach (var proxy in gateway.Proxies) proxy.Mode = FaultProxy.Fault.Reset;
        await Until(() => MetricsAsync(gateway).GetAwaiter().GetResult().Split('\n').Count(l => l.StartsWith("bulwark_upstream_healthy{", StringComparison.Ordinal) && l.EndsWith(" 0", StringComparison.Ordinal)) == 2,
            "the health checks take both endpoints out");

        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var (status, body, response) = await RawHttp.PostJsonAsync(gateway.Http, "v1/chat/completions", Chat());
        Assert.Equal(503, status);
        Assert.Equal("upstream_unavailable", RawHttp.Error(body).GetProperty("code").GetString());
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.True(System.Diagnostics.Stopwatch.GetElapsedTime(started) < TimeSpan.FromSeconds(2), "a fast refusal, not a hang");

        // Back up: the next health check returns them to the rotation.
        foreach (var proxy in gateway.Proxies) proxy.Mode = FaultProxy.Fault.None;
        await Until(() => SendOne(gateway), "an endpoint is back");
    }

    [Fact]
    public async Task AModelWhoseEndpointsAreAllDownFallsBackToItsConfiguredFallback()
    {
        // The gateway also runs a small embedded model, the fallback of the upstream model.
        var file = Path.Combine(Bulwark.Testing.Fixtures.NewTempDirectory("fallback"), "local.gguf");
        Bulwark.Engine.Synthesis.SyntheticModel.WriteGguf(new Bulwark.Engine.Synthesis.SyntheticModelSpec
            { Layers = 1, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 128, Vocab = 320, Context = 128, Seed = 1 }, file);
        await using var gateway = await TestGateway.StartAsync([new ScriptedBackend()], pool: new()
        {
            ["Models:0"] = "primary",
            ["Rename:primary"] = "test-model",
            ["Fallbacks:primary:0"] = "local",
        }, gateway: new() { ["Bulwark:Serve:Model"] = file, ["Bulwark:Serve:KvCacheMemory"] = "4MiB" });
        var completion = JsonSerializer.Serialize(new { model = "primary", prompt = "Once upon a time", max_tokens = 4, temperature = 0 });
        // While the upstream is up, it answers (the scripted reply's first four tokens).
        var upstream = (await RawHttp.PostJsonAsync(gateway.Http, "v1/completions", completion)).Body;
        Assert.Equal("Hell", upstream.GetProperty("choices")[0].GetProperty("text").GetString());

        gateway.Proxies[0].Mode = FaultProxy.Fault.Reset;
        await Until(() => MetricsAsync(gateway).GetAwaiter().GetResult().Split('\n')
            .Any(l => l.StartsWith("bulwark_upstream_healthy{", StringComparison.Ordinal) && l.EndsWith(" 0", StringComparison.Ordinal)), "the endpoint is out");

        var (status, body, _) = await RawHttp.PostJsonAsync(gateway.Http, "v1/completions", completion);
        Assert.Equal(200, status);
        Assert.Equal("primary", body.GetProperty("model").GetString());
        Assert.Equal(4, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        var services = gateway.Host.App.Services;
        await services.GetRequiredService<AuditWriter>().FlushAsync();
        var last = (await services.GetRequiredService<SecurityStorage>().Audit.ReadRecentAsync(1, AuditRecord.RequestKind))[0];
        Assert.Equal("fallback:local", last.Upstream);
    }
}
