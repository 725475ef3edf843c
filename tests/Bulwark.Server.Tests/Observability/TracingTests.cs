using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Bulwark.Server.Observability;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Gateway;
using Bulwark.Server.Tests.Hosting;
using Bulwark.Server.Tests.Security;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;

namespace Bulwark.Server.Tests.Observability;

/// <summary>
/// Traces exported over OTLP/HTTP to a receiver on loopback, read back with an independent protobuf
/// reader: one trace per request (a caller's <c>traceparent</c> honoured), the spine's stages as
/// children of the server span, an upstream joining the same trace through the <c>traceparent</c> the
/// gateway sent it, GenAI attributes, and never a prompt, a completion or a key in the exported bytes.
/// </summary>
public sealed class TracingTests
{
    private static Dictionary<string, string?> Otlp(OtlpReceiver receiver) => new()
    {
        // The standard variables, given as configuration keys: the SDK reads them from IConfiguration, where the environment lands too.
        ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.Endpoint.ToString().TrimEnd('/'),
        ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
    };

    [Fact]
    public async Task ATracedRequestThroughTheGatewayIsOneTraceOfStageSpansJoinedByTheUpstreamWithoutContentOrKeys()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var backend = new ScriptedBackend { Reply = "Completion-text-quokka " };
        await using var gateway = await TestGateway.StartAsync([backend], gateway: Otlp(receiver));
        var issued = await gateway.Host.App.Services.GetRequiredService<KeyIssuer>().CreateAsync(new KeySpec { Name = "traced" }, "tests");
        using var client = gateway.Client(issued.Key);

        // The caller's trace context: the server span must continue this trace, as a child of this span.
        var traceId = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
        var callerSpan = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()[..8]);
        const string prompt = "Prompt-text-axolotl about the secret plans";
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent(JsonSerializer.Serialize(new
            {
                model = "test-model", max_tokens = 6, temperature = 0, messages = new[] { new { role = "user", content = prompt } },
            }), Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("traceparent", $"00-{traceId}-{callerSpan}-01");
        using var response = await client.SendAsync(request);
        var answer = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, answer);
        Assert.Contains("Comple", answer);

        // A refused request: the key in the query string (refused, and never recorded from the URL).
        var refusedTrace = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
        using var refused = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions?api_key=" + issued.Key) { Content = new StringContent("{}", Encoding.UTF8, "application/json") };
        refused.Headers.Add("traceparent", $"00-{refusedTrace}-{callerSpan}-01");
        using (var anonymous = new HttpClient { BaseAddress = gateway.Host.Address }) Assert.Equal(401, (int)(await anonymous.SendAsync(refused)).StatusCode);

        var provider = gateway.Host.App.Services.GetRequiredService<TracerProvider>();
        var exportedBoth = await Eventually.WithinAsync(TimeSpan.FromSeconds(20), () =>
        {
            provider.ForceFlush(5000);
            var spans = receiver.Spans;
            return Task.FromResult(spans.Any(s => s.TraceId == traceId && s.Name == BulwarkTracing.OutputGuard && s.Service == "bulwark")
                && spans.Count(s => s.TraceId == traceId && s.Kind == OtlpSpan.KindServer) == 2
                && spans.Any(s => s.TraceId == refusedTrace && s.Name == BulwarkTracing.Identity));
        });
        Assert.True(exportedBoth, "the spans of both requests were not exported; received:\n" + string.Join('\n', receiver.Spans.Select(s => $"{s.TraceId} {s.ParentSpanId} {s.Name}")));

        var trace = receiver.Spans.Where(s => s.TraceId == traceId).ToList();
        // The gateway's server span continues the caller's span; the upstream's server span is a child of the gateway's attempt span.
        var server = Assert.Single(trace, s => s.Kind == OtlpSpan.KindServer && s.ParentSpanId == callerSpan);
        var generation = Assert.Single(trace, s => s.Name == "chat test-model" && s.ParentSpanId == server.SpanId);
        var attempt = Assert.Single(trace, s => s.Name == "upstream gpu");
        Assert.Equal(OtlpSpan.KindClient, attempt.Kind);
        Assert.Equal(generation.SpanId, attempt.ParentSpanId);
        Assert.Equal("success", attempt["bulwark.upstream.outcome"]);
        Assert.Equal(200L, attempt["http.response.status_code"]);
        var upstreamServer = Assert.Single(trace, s => s.Kind == OtlpSpan.KindServer && s.ParentSpanId == attempt.SpanId);
        Assert.NotEqual(server.SpanId, upstreamServer.SpanId);

        // The gateway's stages, in the spine's order, each a child of its server span.
        string[] stages = [BulwarkTracing.Identity, BulwarkTracing.Policy, BulwarkTracing.Contract, BulwarkTracing.InputGuard, BulwarkTracing.Prompt,
            BulwarkTracing.TokenQuota, BulwarkTracing.Queue];
        foreach (var stage in stages) Assert.Single(trace, s => s.Name == stage && s.ParentSpanId == server.SpanId);
        // The upstream ran its own spine in the same trace, under its own server span.
        foreach (var stage in stages) Assert.Single(trace, s => s.Name == stage && s.ParentSpanId == upstreamServer.SpanId);
        foreach (var phase in new[] { BulwarkTracing.Prefill, BulwarkTracing.Decode, BulwarkTracing.OutputGuard })
            Assert.Single(trace, s => s.Name == phase && s.ParentSpanId == generation.SpanId);
        Assert.All(trace, s => Assert.NotEqual(OtlpSpan.StatusError, s.StatusCode));

        // GenAI attributes on the generation span, the key's id (not the key) on the gateway's identity span and server span.
        Assert.Equal("chat", generation["gen_ai.operation.name"]);
        Assert.Equal("test-model", generation["gen_ai.request.model"]);
        Assert.Equal(6L, generation["gen_ai.request.max_tokens"]);
        Assert.Equal(0.0, generation["gen_ai.request.temperature"]);
        Assert.Equal(1.0, generation["gen_ai.request.top_p"]); // a double whose bits are not all zero: the fixed64 decoding holds
        Assert.Equal(6L, generation["gen_ai.usage.output_tokens"]);
        Assert.True(generation["gen_ai.usage.input_tokens"] is long input && input > 0);
        Assert.Equal(["length"], Assert.IsType<object[]>(generation["gen_ai.response.finish_reasons"]));
        Assert.Equal("gpu", generation["bulwark.upstream.pool"]);
        Assert.Equal(6L, trace.Single(s => s.Name == BulwarkTracing.Decode && s.ParentSpanId == generation.SpanId)["gen_ai.usage.output_tokens"]);
        Assert.Equal(issued.Record.Id, trace.Single(s => s.Name == BulwarkTracing.Identity && s.ParentSpanId == server.SpanId)["bulwark.key_id"]);
        Assert.Equal(issued.Record.Id, server["bulwark.key_id"]);
        Assert.True(trace.Single(s => s.Name == BulwarkTracing.Queue && s.ParentSpanId == server.SpanId)["bulwark.queue.wait_seconds"] is double wait && wait is >= 0 and < 60);

        // The refusal: the identity stage failed with its reason code, and so did the server span.
        var refusedSpans = receiver.Spans.Where(s => s.TraceId == refusedTrace).ToList();
        var identity = Assert.Single(refusedSpans, s => s.Name == BulwarkTracing.Identity);
        Assert.Equal((OtlpSpan.StatusError, "key_in_query_string"), (identity.StatusCode, identity.StatusMessage));
        Assert.Equal("key_in_query_string", Assert.Single(refusedSpans, s => s.Kind == OtlpSpan.KindServer)["bulwark.refusal_reason"]);

        // Nothing anywhere in what was exported: no prompt, no completion, no key (the client's, the upstream's, the one in the URL).
        var exported = string.Concat(receiver.Bodies.Select(b => Encoding.Latin1.GetString(b)));
        foreach (var secret in new[] { "axolotl", "Prompt-text", "quokka", "Completion-text", "Comple", issued.Key, gateway.UpstreamKey, gateway.ApiKey })
            Assert.DoesNotContain(secret, exported);
    }

    [Fact]
    public async Task AStageThatRefusesEndsWithErrorAndItsReasonAndNoLaterStageRunsAndProbesAreNotTraced()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var server = await RunningServer.StartAsync(new ScriptedBackend(contextLength: 64), Otlp(receiver));
        var other = await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "elsewhere", Models = ["another-model"] }, "tests");

        async Task<string> SendAsync(HttpClient client, string body, int status)
        {
            var traceId = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            request.Headers.Add("traceparent", $"00-{traceId}-{Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()[..8])}-01");
            using var response = await client.SendAsync(request);
            Assert.Equal(status, (int)response.StatusCode);
            return traceId;
        }
        // Probes and scrapes are never traced.
        var probeTrace = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
        foreach (var path in new[] { "health", "ready", "metrics" })
        {
            using var probe = new HttpRequestMessage(HttpMethod.Get, path);
            probe.Headers.Add("traceparent", $"00-{probeTrace}-{Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()[..8])}-01");
            (await server.Metrics.SendAsync(probe)).EnsureSuccessStatusCode();
        }
        // The prompt leaves no room in a 64-token context: the prompt stage refuses (400 context_length_exceeded).
        var tooLong = await SendAsync(server.Http, JsonSerializer.Serialize(new { model = "test-model", prompt = new string('x', 200), max_tokens = 1 }), 400);
        // A key that may not use the model: the policy stage refuses (404, as for a model that does not exist).
        using var otherClient = server.Client(other.Key);
        var notAllowed = await SendAsync(otherClient, """{"model":"test-model","prompt":"hi","max_tokens":1}""", 404);
        // A body the contract refuses.
        var invalid = await SendAsync(server.Http, """{"model":"test-model","prompt":"hi","max_tokens":-3}""", 400);

        var provider = server.App.Services.GetRequiredService<TracerProvider>();
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(20), () =>
        {
            provider.ForceFlush(5000);
            var traces = receiver.Spans.Select(s => s.TraceId).ToHashSet();
            return Task.FromResult(traces.Contains(tooLong) && traces.Contains(notAllowed) && traces.Contains(invalid));
        }), "the refused requests' spans were not exported");

        void Refused(string traceId, string stage, string reason, params string[] absent)
        {
            var spans = receiver.Spans.Where(s => s.TraceId == traceId).ToList();
            var failed = Assert.Single(spans, s => s.StatusCode == OtlpSpan.StatusError && s.Kind == OtlpSpan.KindInternal);
            Assert.Equal((stage, reason), (failed.Name, failed.StatusMessage));
            Assert.Equal(reason, failed["bulwark.refusal_reason"]);
            foreach (var name in absent) Assert.DoesNotContain(spans, s => s.Name == name);
            Assert.Contains(spans, s => s.Name == BulwarkTracing.Identity && s.StatusCode != OtlpSpan.StatusError);
        }
        Refused(tooLong, BulwarkTracing.Prompt, "context_length_exceeded", BulwarkTracing.TokenQuota, BulwarkTracing.Queue, "text_completion test-model");
        Refused(notAllowed, BulwarkTracing.Policy, "model_not_allowed", BulwarkTracing.Contract, BulwarkTracing.Queue);
        Refused(invalid, BulwarkTracing.Contract, "invalid_value", BulwarkTracing.InputGuard, BulwarkTracing.Queue);
        Assert.DoesNotContain(other.Key, string.Concat(receiver.Bodies.Select(b => Encoding.Latin1.GetString(b))));
        Assert.DoesNotContain(receiver.Spans, s => s.TraceId == probeTrace);
    }

    [Fact]
    public async Task WithNothingConfiguredNoTracerProviderOrExporterIsRegistered()
    {
        await using var off = await RunningServer.StartAsync(new ScriptedBackend());
        Assert.Null(off.App.Services.GetService<TracerProvider>());
        Assert.Equal(200, (int)(await off.Http.PostAsync("v1/completions", new StringContent("""{"model":"test-model","prompt":"hi","max_tokens":1}""", Encoding.UTF8, "application/json"))).StatusCode);

        // An endpoint turns it on; Enabled=false or OTEL_SDK_DISABLED turn it off again whatever the endpoint says.
        var endpoint = new Dictionary<string, string?> { ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9" };
        await using (var on = await RunningServer.StartAsync(new ScriptedBackend(), endpoint))
            Assert.NotNull(on.App.Services.GetService<TracerProvider>());
        await using (var disabled = await RunningServer.StartAsync(new ScriptedBackend(), new(endpoint) { ["Bulwark:Tracing:Enabled"] = "false" }))
            Assert.Null(disabled.App.Services.GetService<TracerProvider>());
        await using (var sdkOff = await RunningServer.StartAsync(new ScriptedBackend(), new(endpoint) { ["OTEL_SDK_DISABLED"] = "true" }))
            Assert.Null(sdkOff.App.Services.GetService<TracerProvider>());
    }
}
