using System.Text.Json;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Synthesis;
using Bulwark.Server.Backends.Embedded;
using Bulwark.Server.Hosting;
using Bulwark.Server.Security;
using Bulwark.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>
/// <c>serve --draft-model</c> (<c>Bulwark:Serve:Speculative:DraftModel</c>): the draft model loads beside the served model, a
/// request asks for it with <c>"speculative": {"method": "draft_model"}</c>, the answer is the one without speculation,
/// and a draft model of another tokenizer, a missing one, or asking for one that is not there are clear errors.
/// </summary>
public sealed class DraftModelServeTests
{
    private static readonly SyntheticModelSpec Spec = new()
    {
        DType = GgmlType.F32, Layers = 2, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 128, Vocab = 512, Context = 256, Seed = 5,
        ChatTemplate = SyntheticModel.ChatMlTemplate,
    };

    private static Microsoft.AspNetCore.Builder.WebApplicationBuilder Builder(Dictionary<string, string?> flags)
    {
        var all = new Dictionary<string, string?> { ["Bulwark:Server:Port"] = "0", [ServerSettings.DataDirKey] = Fixtures.NewTempDirectory("serve-draft"), ["Bulwark:Serve:KvCacheMemory"] = "16MiB" };
        foreach (var (k, v) in flags) all[k] = v;
        var builder = BulwarkServer.CreateBuilder([], all);
        builder.Logging.ClearProviders();
        return builder;
    }

    private static string Write(SyntheticModelSpec spec, string name)
    {
        var path = Path.Combine(Fixtures.NewTempDirectory("draft-models"), name + ".gguf");
        SyntheticModel.WriteGguf(spec, path);
        return path;
    }

    private static async Task<(int Status, JsonElement Body)> CompleteAsync(ServeHost host, string speculative)
    {
        var key = (await host.App.Services.GetRequiredService<KeyIssuer>().CreateAsync(new KeySpec { Name = "t" }, "tests")).Key;
        using var http = new HttpClient { BaseAddress = host.Address };
        http.DefaultRequestHeaders.Authorization = new("Bearer", key);
        var body = $$"""{"model":"{{host.Model!.Id}}","prompt":"Hello there, hello there, hello","max_tokens":24,"temperature":0,"ignore_eos":true{{speculative}}}""";
        using var response = await http.PostAsync("v1/completions", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        return ((int)response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone());
    }

    [Fact]
    public async Task ARequestDraftingWithTheDraftModelAnswersAsWithoutIt()
    {
        var target = Write(Spec, "target");
        var draft = Write(Spec with { Seed = 9, Layers = 1 }, "draft");
        var output = new StringWriter();
        await using var host = await ServeHost.StartAsync(Builder(new() { ["Bulwark:Serve:Model"] = target, ["Bulwark:Serve:Speculative:DraftModel"] = draft }), output);
        var (plainStatus, plain) = await CompleteAsync(host, "");
        Assert.Equal(200, plainStatus);
        var (status, speculative) = await CompleteAsync(host, ""","speculative":{"method":"draft_model","num_speculative_tokens":3}""");
        Assert.Equal(200, status);
        Assert.Equal(plain.GetProperty("choices")[0].GetProperty("text").GetString(), speculative.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(plain.GetProperty("usage").GetRawText(), speculative.GetProperty("usage").GetRawText());
        var engine = ((EmbeddedBackend)host.Backend!).Engine;
        Assert.True(engine.HasDraftModel);
        Assert.True(engine.Counters.DraftTokens > 0, "the draft model proposed nothing");
    }

    [Fact]
    public async Task DraftModelAsTheServerDefaultDraftsForRequestsThatDoNotChoose()
    {
        var target = Write(Spec, "target");
        await using var host = await ServeHost.StartAsync(Builder(new()
        {
            ["Bulwark:Serve:Model"] = target, ["Bulwark:Serve:Speculative:DraftModel"] = target, ["Bulwark:Serve:Speculative:Method"] = "draft_model",
        }), TextWriter.Null);
        var (status, _) = await CompleteAsync(host, "");
        Assert.Equal(200, status);
        var counters = ((EmbeddedBackend)host.Backend!).Engine.Counters;
        // The model drafting for itself agrees with itself (up to float rounding of batch shapes).
        Assert.True(counters.AcceptedDraftTokens > 0 && counters.AcceptedDraftTokens >= counters.DraftTokens * 9 / 10, $"{counters.AcceptedDraftTokens} of {counters.DraftTokens}");
    }

    [Fact]
    public async Task AskingForTheDraftModelWithoutOneIsA400NamingTheField()
    {
        await using var host = await ServeHost.StartAsync(Builder(new() { ["Bulwark:Serve:Model"] = Write(Spec, "target") }), TextWriter.Null);
        var (status, body) = await CompleteAsync(host, ""","speculative":{"method":"draft_model"}""");
        Assert.Equal(400, status);
        Assert.Equal("speculative.method", body.GetProperty("error").GetProperty("param").GetString());
        Assert.Contains("--draft-model", body.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task ADraftModelOfAnotherTokenizerAMissingOneOrAMethodWithoutOneStopStartUp()
    {
        var target = Write(Spec, "target");
        var other = Write(Spec with { Vocab = 600 }, "other");
        var e = await Assert.ThrowsAsync<ServerConfigurationException>(() => ServeHost.StartAsync(
            Builder(new() { ["Bulwark:Serve:Model"] = target, ["Bulwark:Serve:Speculative:DraftModel"] = other }), TextWriter.Null));
        Assert.Contains("share the tokenizer", Assert.Single(e.Problems));
        e = await Assert.ThrowsAsync<ServerConfigurationException>(() => ServeHost.StartAsync(
            Builder(new() { ["Bulwark:Serve:Model"] = target, ["Bulwark:Serve:Speculative:DraftModel"] = target + ".missing" }), TextWriter.Null));
        Assert.StartsWith("draft model: ", Assert.Single(e.Problems));
        e = await Assert.ThrowsAsync<ServerConfigurationException>(() => ServeHost.StartAsync(
            Builder(new() { ["Bulwark:Serve:Model"] = target, ["Bulwark:Serve:Speculative:Method"] = "draft_model" }), TextWriter.Null,
            (_, _) => throw new InvalidOperationException("must not load")));
        Assert.Equal("Bulwark:Serve:Speculative:Method draft_model needs Bulwark:Serve:Speculative:DraftModel (--draft-model): the model that drafts.", Assert.Single(e.Problems));
    }
}
