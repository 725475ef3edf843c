using System.Net;
using Bulwark.Server.Admission;
using Bulwark.Server.Tests.Api;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>Disconnects, overload and shutdown against the real composition on Kestrel.</summary>
public sealed class ServerLifecycleTests
{
    private static string Chat(int maxTokens, bool stream = false) =>
        $$"""{"model":"test-model","messages":[{"role":"user","content":"hi"}],"max_tokens":{{maxTokens}},"temperature":0,"stream":{{(stream ? "true" : "false")}}}""";

    private static async Task Until(Func<bool> condition, string what)
    {
        for (var i = 0; i < 500 && !condition(); i++) await Task.Delay(20);
        Assert.True(condition(), "timed out waiting until " + what);
    }

    [Fact]
    public async Task ClientDisconnectMidStreamFreesTheSequence()
    {
        var backend = new ScriptedBackend { BeforeEachToken = ct => Task.Delay(10, ct) };
        await using var server = await RunningServer.StartAsync(backend);
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent(Chat(200, stream: true), System.Text.Encoding.UTF8, "application/json"),
        };
        var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var stream = await response.Content.ReadAsStreamAsync();
        var first = await new StreamReader(stream).ReadLineAsync();
        Assert.StartsWith("data: {", first);
        Assert.Equal(1, backend.ActiveSequences);

        response.Dispose(); // the client goes away mid-stream
        await Until(() => backend.ActiveSequences == 0, "the sequence is freed");
        // The admission slot is released as the endpoint unwinds, just after the backend sees the cancellation.
        await Until(() => server.Get<AdmissionQueue>().Running == 0, "the admission slot is released");
    }

    [Fact]
    public async Task OverloadIsAnswered429WithRetryAfterAtOnceAndEveryRequestGetsOneAnswer()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var backend = new ScriptedBackend { BeforeEachToken = ct => gate.Task.WaitAsync(ct) };
        await using var server = await RunningServer.StartAsync(backend, new()
        {
            ["Bulwark:Admission:MaxConcurrentRequests"] = "1",
            ["Bulwark:Admission:MaxQueueLength"] = "1",
        });
        var queue = server.Get<AdmissionQueue>();
        var admitted = new List<Task<(int Status, System.Text.Json.JsonElement Body, HttpResponseMessage Response)>>
        {
            RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(3)),
        };
        await Until(() => queue.Running == 1, "the first request runs");
        admitted.Add(RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(3)));
        await Until(() => queue.Waiting == 1, "the second request waits");

        for (var i = 0; i < 3; i++)
        {
            var (status, body, response) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(3));
            Assert.Equal(429, status);
            Assert.Equal("queue_full", RawHttp.Error(body).GetProperty("code").GetString());
            Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter!.Delta);
        }

        gate.SetResult();
        foreach (var task in admitted) Assert.Equal(200, (await task).Status);
        Assert.Equal(2, backend.StartedSequences);
        Assert.Equal(0, backend.ActiveSequences);
    }

    [Fact]
    public async Task ShutdownLetsTheRequestInFlightFinish()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var backend = new ScriptedBackend { BeforeEachToken = ct => gate.Task.WaitAsync(ct) };
        var server = await RunningServer.StartAsync(backend);
        var inFlight = RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(5));
        await Until(() => backend.ActiveSequences == 1, "the request runs");

        var stopping = server.App.StopAsync();
        await Until(() => server.Get<Bulwark.Server.Admission.ShutdownDrain>().IsDraining, "the drain begins");
        gate.SetResult();
        var (status, body, _) = await inFlight;
        Assert.Equal(200, status);
        Assert.Equal("Hello", body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        await stopping;
        await server.DisposeAsync();
    }

    [Fact]
    public async Task ShutdownCancelsWhatOutlastsTheDrainTimeoutWithAClearError()
    {
        var backend = new ScriptedBackend { BeforeEachToken = ct => Task.Delay(Timeout.Infinite, ct) };
        var server = await RunningServer.StartAsync(backend, new() { ["Bulwark:Server:DrainTimeout"] = "00:00:00.200" });
        var inFlight = RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat(5));
        await Until(() => backend.ActiveSequences == 1, "the request runs");

        await server.App.StopAsync();
        var (status, body, response) = await inFlight;
        Assert.Equal(503, status);
        Assert.Equal("server_shutting_down", RawHttp.Error(body).GetProperty("code").GetString());
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Equal(0, backend.ActiveSequences);
        await server.DisposeAsync();
    }
}
