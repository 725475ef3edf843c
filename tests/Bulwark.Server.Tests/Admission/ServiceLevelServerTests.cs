using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Bulwark.Server.Admission;
using Bulwark.Server.Audit;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Hosting;
using Bulwark.Server.Tests.Security;

namespace Bulwark.Server.Tests.Admission;

/// <summary>Isolation and degradation through the real server: what clients, <c>/ready</c>, metrics and the audit log see.</summary>
public sealed class ServiceLevelServerTests
{
    private static string Chat(int maxTokens) =>
        $$"""{"model":"test-model","messages":[{"role":"user","content":"hi"}],"max_tokens":{{maxTokens}},"temperature":0}""";

    // The timer would read the signals on its own; the tests read them when they choose.
    private static readonly Dictionary<string, string?> ManualEvaluation = new() { ["Bulwark:Degradation:EvaluationInterval"] = "00:01:00" };

    private static async Task Until(Func<bool> condition, string what) =>
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(10), () => Task.FromResult(condition())), "timed out waiting until " + what);

    [Fact]
    public async Task AnIsolatedReplicaRefusesNewRequestsFinishesTheOneInFlightAndFailsReadinessUntilResumed()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var backend = new ScriptedBackend { EndAfter = 3, BeforeEachToken = ct => gate.Task.WaitAsync(ct) };
        await using var server = await RunningServer.StartAsync(backend, ManualEvaluation);
        var admin = (await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "ops", IsAdmin = true }, "test")).Key;
        using var adminClient = server.Client(admin);
        var inFlight = RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(3));
        await Until(() => backend.ActiveSequences == 1, "the first request generates");

        using var isolate = await adminClient.PostAsJsonAsync("admin/isolate", new { reason = "suspected disk fault" });
        Assert.Equal(HttpStatusCode.OK, isolate.StatusCode);
        var status = await isolate.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(status.GetProperty("isolated").GetBoolean());
        Assert.Equal("suspected disk fault", status.GetProperty("reason").GetString());

        var (refused, error, response) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(3));
        Assert.Equal(503, refused);
        Assert.Equal("replica_isolated", RawHttp.Error(error).GetProperty("code").GetString());
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Equal(503, (await RawHttp.PostJsonAsync(server.Http, "generate", """{"inputs":"hi"}""")).Status);
        Assert.Equal(503, (await RawHttp.PostJsonAsync(server.Http, "tokenize", """{"prompt":"hi"}""")).Status);
        using (var ready = await server.Client(null).GetAsync("ready"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            Assert.Contains("isolated since", await ready.Content.ReadAsStringAsync());
            Assert.Contains("suspected disk fault", await ready.Content.ReadAsStringAsync());
        }
        // The admin API keeps working, and the request admitted before finishes.
        Assert.Equal(HttpStatusCode.OK, (await adminClient.GetAsync("admin/keys")).StatusCode);
        Assert.Contains("bulwark_replica_isolated 1", await server.Metrics.GetStringAsync("metrics"));
        gate.SetResult();
        Assert.Equal(200, (await inFlight).Status);

        using var resume = await adminClient.PostAsync("admin/resume", null);
        Assert.Equal(HttpStatusCode.OK, resume.StatusCode);
        Assert.False((await resume.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("isolated").GetBoolean());
        Assert.Equal(200, (await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(3))).Status);
        Assert.Equal(HttpStatusCode.OK, (await server.Client(null).GetAsync("ready")).StatusCode);

        var audit = await server.Get<SecurityStorage>().Audit.ReadRecentAsync(50);
        Assert.Contains(audit, a => a.Kind == "replica.isolated" && a.Detail!.Contains("suspected disk fault"));
        Assert.Contains(audit, a => a.Kind == "replica.resumed");
        await server.Get<AuditWriter>().FlushAsync();
        audit = await server.Get<SecurityStorage>().Audit.ReadRecentAsync(50);
        Assert.Contains(audit, a => a.Kind == AuditRecord.RequestKind && a.Reason == "replica_isolated");
    }

    [Fact]
    public async Task IsolationRequestsAreCheckedAndNeedAnAdminKey()
    {
        await using var server = await RunningServer.StartAsync(new ScriptedBackend(), ManualEvaluation);
        var admin = (await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "ops", IsAdmin = true }, "test")).Key;
        using var adminClient = server.Client(admin);
        Assert.Equal(HttpStatusCode.Forbidden, (await server.Http.PostAsync("admin/isolate", null)).StatusCode);
        using var both = await adminClient.PostAsJsonAsync("admin/isolate", new { replica = "x", all_replicas = true });
        Assert.Equal(HttpStatusCode.BadRequest, both.StatusCode);
        using var longReason = await adminClient.PostAsJsonAsync("admin/isolate", new { reason = new string('r', 501) });
        Assert.Equal(HttpStatusCode.BadRequest, longReason.StatusCode);
        Assert.Contains("at most 500", await longReason.Content.ReadAsStringAsync());
        using var atLimit = await adminClient.PostAsJsonAsync("admin/isolate", new { reason = new string('r', 500) });
        Assert.Equal(HttpStatusCode.OK, atLimit.StatusCode);
        // Another replica's id goes to the incident log and leaves this one alone.
        await adminClient.PostAsync("admin/resume", null);
        using var other = await adminClient.PostAsJsonAsync("admin/isolate", new { replica = "some-other-host/1/abcdef" });
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
        var view = await other.Content.ReadFromJsonAsync<JsonElement>();
        Assert.False(view.GetProperty("isolated").GetBoolean());
        Assert.Equal("some-other-host/1/abcdef", view.GetProperty("target").GetString());
        Assert.Equal(200, (await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(2))).Status);
    }

    [Fact]
    public async Task UnderLoadTheLevelCapsMaxTokensThenRefusesLowPriorityKeysAndReadyShowsIt()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var backend = new ScriptedBackend { BeforeEachToken = ct => gate.Task.WaitAsync(ct) };
        await using var server = await RunningServer.StartAsync(backend, new(ManualEvaluation)
        {
            ["Bulwark:Admission:MaxConcurrentRequests"] = "1",
            ["Bulwark:Admission:MaxQueueLength"] = "2",
            ["Bulwark:Degradation:Reduced:QueueFill"] = "0.5",
            ["Bulwark:Degradation:Reduced:MaxTokens"] = "2",
            ["Bulwark:Degradation:Minimal:QueueFill"] = "1",
            ["Bulwark:Degradation:Minimal:MaxTokens"] = "2",
            ["Bulwark:Degradation:Minimal:MinPriority"] = "5",
        });
        var level = server.Get<ServiceLevel>();
        var queue = server.Get<AdmissionQueue>();
        var high = (await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "high", Priority = 5 }, "test")).Key;

        var load = new List<Task<(int Status, JsonElement Body, HttpResponseMessage Response)>> { RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(8)) };
        await Until(() => queue.Running == 1, "one request runs");
        load.Add(RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(8)));
        await Until(() => queue.Waiting == 1, "one request waits");
        level.Evaluate();
        Assert.Equal(DegradationLevel.Reduced, level.Level);
        load.Add(RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(8)));
        await Until(() => queue.Waiting == 2, "two requests wait");
        level.Evaluate();
        Assert.Equal(DegradationLevel.Minimal, level.Level);
        Assert.Contains("bulwark_degradation_level 2", await server.Metrics.GetStringAsync("metrics"));

        // The ordinary key (priority 0) is refused; the priority-5 key is served, within the cap.
        var (refused, error, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(8));
        Assert.Equal(503, refused);
        Assert.Equal("server_degraded", RawHttp.Error(error).GetProperty("code").GetString());
        gate.SetResult();
        foreach (var task in load) Assert.Equal(200, (await task).Status);
        var (served, body, response) = await RawHttp.PostJsonAsync(server.Client(high), "v1/chat/completions", Chat(8));
        Assert.Equal(200, served);
        Assert.Equal(2, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal("length", body.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal("minimal; max_tokens=2", response.Headers.GetValues("X-Bulwark-Degradation").Single());
        // The level holds for the recovery time after the load is gone; /ready passes and says so.
        using var ready = await server.Client(null).GetAsync("ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Matches(@"^ok\ndegradation: minimal since .* \(queue 2/2 waiting, oldest [0-9.]+ s\)\n$", await ready.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task AHigherPriorityRequestShedsALowerOneFromAFullQueue()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var backend = new ScriptedBackend { EndAfter = 1, BeforeEachToken = ct => gate.Task.WaitAsync(ct) };
        await using var server = await RunningServer.StartAsync(backend, new(ManualEvaluation)
        {
            ["Bulwark:Admission:MaxConcurrentRequests"] = "1",
            ["Bulwark:Admission:MaxQueueLength"] = "1",
            ["Bulwark:Degradation:Enabled"] = "false",
        });
        var queue = server.Get<AdmissionQueue>();
        var high = (await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "high", Priority = 7 }, "test")).Key;
        var running = RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(1));
        await Until(() => queue.Running == 1, "one request runs");
        var low = RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(1));
        await Until(() => queue.Waiting == 1, "the low-priority request waits");

        var fromHigh = RawHttp.PostJsonAsync(server.Client(high), "v1/chat/completions", Chat(1));
        var (shedStatus, shedBody, shedResponse) = await low;
        Assert.Equal(429, shedStatus);
        Assert.Equal("shed", RawHttp.Error(shedBody).GetProperty("code").GetString());
        Assert.NotNull(shedResponse.Headers.RetryAfter);
        gate.SetResult();
        Assert.Equal(200, (await running).Status);
        Assert.Equal(200, (await fromHigh).Status);
        Assert.Contains("bulwark_rejected_requests_total{reason=\"shed\"} 1", await server.Metrics.GetStringAsync("metrics"));
    }
}
