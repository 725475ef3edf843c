using System.Text.Json;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Hosting;

namespace Bulwark.Server.Tests.Gateway;

/// <summary>A pool speaking TGI's native protocol (<c>/generate</c>, <c>/generate_stream</c>); Bulwark's own TGI routes stand in for TGI.</summary>
public sealed class GatewayTgiTests
{
    private static Task<TestGateway> StartAsync(ScriptedBackend backend) =>
        TestGateway.StartAsync([backend], pool: new() { ["Protocol"] = "tgi", ["Models:0"] = "tgi-model" }, basePath: "");

    private static string Completion(object extra)
    {
        var body = new Dictionary<string, object?> { ["model"] = "tgi-model", ["prompt"] = "Once upon", ["max_tokens"] = 12, ["temperature"] = 0 };
        foreach (var p in extra.GetType().GetProperties()) body[p.Name] = p.GetValue(extra);
        return JsonSerializer.Serialize(body);
    }

    [Fact]
    public async Task CompletionsAreServedOverGenerateWholeAndStreamedWithStopStrings()
    {
        var backend = new ScriptedBackend();
        await using var gateway = await StartAsync(backend);
        Assert.Contains("models tgi-model", gateway.Output);

        var (status, body, _) = await RawHttp.PostJsonAsync(gateway.Http, "v1/completions", Completion(new { }));
        Assert.Equal(200, status);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("Hello from t", choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(12, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        // Streamed, with a stop string: the text ends before it, and the choice says stop.
        var response = await gateway.Http.PostAsync("v1/completions", new StringContent(Completion(new { stream = true, stop = "from" }), System.Text.Encoding.UTF8, "application/json"));
        var events = RawHttp.Events(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0]).ToList();
        Assert.Equal("Hello ", string.Concat(chunks.Select(c => c.GetProperty("text").GetString())));
        Assert.Equal("stop", chunks[^1].GetProperty("finish_reason").GetString());
        Assert.Equal(2, backend.StartedSequences);
    }

    [Theory]
    [InlineData("""{"model":"tgi-model","messages":[{"role":"user","content":"hi"}]}""", "v1/chat/completions", "messages")]
    [InlineData("""{"model":"tgi-model","prompt":"hi","n":2}""", "v1/completions", "n")]
    [InlineData("""{"model":"tgi-model","prompt":[1,2,3]}""", "v1/completions", "prompt")]
    [InlineData("""{"model":"tgi-model","prompt":"hi","logit_bias":{"5":1}}""", "v1/completions", "logit_bias")]
    public async Task WhatTgiCannotCarryIsRefusedNamingTheField(string request, string route, string field)
    {
        var backend = new ScriptedBackend();
        await using var gateway = await StartAsync(backend);
        var (status, body, _) = await RawHttp.PostJsonAsync(gateway.Http, route, request);
        Assert.Equal(400, status);
        Assert.Equal(field, RawHttp.Error(body).GetProperty("param").GetString());
        Assert.Equal(0, backend.PreparedPrompts);
    }
}
