using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Bulwark.Server.Admission;
using Bulwark.Server.Requests;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Hosting;
using Bulwark.Server.Tests.Security;

namespace Bulwark.Server.Tests.Spine;

/// <summary>The per-request deadline: server default and cap, the client's header, and how a passed deadline ends a request.</summary>
public sealed class RequestDeadlineTests
{
    private const string Chat = """{"model":"test-model","messages":[{"role":"user","content":"hi"}],"max_tokens":50,"temperature":0}""";

    /// <summary>A backend that spells two tokens, then waits (cancellably) for ever.</summary>
    private static ScriptedBackend Stalling()
    {
        var tokens = 0;
        return new ScriptedBackend
        {
            BeforeEachToken = async ct =>
            {
                if (Interlocked.Increment(ref tokens) > 2) await Task.Delay(Timeout.Infinite, ct);
            },
        };
    }

    private static async Task<(int Status, string Body, HttpResponseMessage Response)> PostAsync(HttpClient client, string path, string body, string? timeout)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        if (timeout is not null) request.Headers.TryAddWithoutValidation(RequestDeadline.Header, timeout);
        var response = await client.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(), response);
    }

    [Fact]
    public async Task TheClientsDeadlineEndsAWholeResponseWithWhatItHasAndASayingStopReason()
    {
        var backend = Stalling();
        await using var server = await RunningServer.StartAsync(backend);
        var (status, body, _) = await PostAsync(server.Http, "v1/chat/completions", Chat, "0.5");
        Assert.Equal(200, status);
        var choice = JsonDocument.Parse(body).RootElement.GetProperty("choices")[0];
        Assert.Equal("He", choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal("deadline", choice.GetProperty("stop_reason").GetString());
        Assert.Equal(2, JsonDocument.Parse(body).RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(5), () => Task.FromResult(backend.ActiveSequences == 0)), "the sequence was not freed");
        Assert.Contains("bulwark_deadline_exceeded_total{stage=\"generation\"} 1", await server.Metrics.GetStringAsync("metrics"));
    }

    [Fact]
    public async Task TheServersDefaultDeadlineEndsAStreamWithAFinalChunkThatSaysSo()
    {
        await using var server = await RunningServer.StartAsync(Stalling(), new() { ["Bulwark:Limits:RequestTimeout"] = "00:00:01" });
        var (status, body, _) = await PostAsync(server.Http, "v1/chat/completions", Chat.Replace("\"temperature\":0", "\"temperature\":0,\"stream\":true"), null);
        Assert.Equal(200, status);
        var events = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", events[^1]);
        var last = JsonDocument.Parse(events[^2]).RootElement.GetProperty("choices")[0];
        Assert.Equal("length", last.GetProperty("finish_reason").GetString());
        Assert.Equal("deadline", last.GetProperty("stop_reason").GetString());
        // TGI's routes end the same way, in TGI's words.
        var (tgiStatus, tgiBody, _) = await PostAsync(server.Http, "generate", """{"inputs":"hi","parameters":{"max_new_tokens":50,"details":true}}""", "0.3");
        Assert.Equal(200, tgiStatus);
        Assert.Equal("length", JsonDocument.Parse(tgiBody).RootElement.GetProperty("details").GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task ADeadlineThatPassesInTheQueueAnswers504AndGeneratesNothing()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var backend = new ScriptedBackend { EndAfter = 1, BeforeEachToken = ct => gate.Task.WaitAsync(ct) };
        await using var server = await RunningServer.StartAsync(backend, new() { ["Bulwark:Admission:MaxConcurrentRequests"] = "1" });
        var queue = server.Get<AdmissionQueue>();
        var running = RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat);
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(10), () => Task.FromResult(queue.Running == 1)));

        var (status, body, response) = await PostAsync(server.Http, "v1/chat/completions", Chat, "0.3");
        Assert.Equal(504, status);
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.Equal("deadline_exceeded", error.GetProperty("code").GetString());
        Assert.Contains("0.3 s", error.GetProperty("message").GetString());
        Assert.Equal(0, queue.Waiting);
        Assert.Equal(1, backend.StartedSequences);
        gate.SetResult();
        Assert.Equal(200, (await running).Status);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("abc")]
    [InlineData("NaN")]
    [InlineData("1e3")]
    [InlineData("3600.001")] // above the default maximum of one hour
    public async Task ADeadlineHeaderThatIsNotSecondsWithinTheMaximumIsRefused(string value)
    {
        await using var server = await RunningServer.StartAsync(new ScriptedBackend { EndAfter = 1 });
        var (status, body, _) = await PostAsync(server.Http, "v1/chat/completions", Chat, value);
        Assert.Equal(400, status);
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.Equal(RequestDeadline.Header, error.GetProperty("param").GetString());
        Assert.Contains("at most 3600", error.GetProperty("message").GetString());
    }

    [Theory]
    [InlineData("3600")]
    [InlineData("0.001")]
    public async Task ADeadlineAtTheMaximumOrJustAboveZeroIsAccepted(string value)
    {
        await using var server = await RunningServer.StartAsync(new ScriptedBackend { EndAfter = 1 });
        var (status, _, _) = await PostAsync(server.Http, "v1/chat/completions", Chat, value);
        // 1 ms may pass before the request reaches a slot: then the answer is the deadline's, never a 400.
        Assert.True(status is 200 or 504, $"status {status}");
        if (value == "3600") Assert.Equal(200, status);
    }

    [Fact]
    public void TheServersDeadlineSettingsAreCheckedAtTheirLimits()
    {
        Assert.Empty(new Bulwark.Server.Api.ApiLimits { RequestTimeout = TimeSpan.FromSeconds(1), MaxRequestTimeout = TimeSpan.FromSeconds(1) }.Validate());
        Assert.Empty(new Bulwark.Server.Api.ApiLimits { RequestTimeout = TimeSpan.FromDays(1), MaxRequestTimeout = TimeSpan.FromDays(1) }.Validate());
        Assert.Contains(new Bulwark.Server.Api.ApiLimits { RequestTimeout = TimeSpan.FromMilliseconds(999) }.Validate(), p => p.Contains("RequestTimeout must be between"));
        Assert.Contains(new Bulwark.Server.Api.ApiLimits { RequestTimeout = TimeSpan.FromHours(2) }.Validate(), p => p.Contains("RequestTimeout must be between 00:00:01 and MaxRequestTimeout"));
        Assert.Contains(new Bulwark.Server.Api.ApiLimits { MaxRequestTimeout = TimeSpan.FromDays(1.01), RequestTimeout = TimeSpan.FromMinutes(1) }.Validate(), p => p.Contains("MaxRequestTimeout must be between"));
    }
}
