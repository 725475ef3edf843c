using System.Collections.Concurrent;
using System.Text.Json;
using Bulwark.Engine.Evaluation.Safety;
using Bulwark.Server.Registry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Tests.Registry;

public class SafetyUpstreamTests
{
    /// <summary>
    /// Test fixture standing in for an OpenAI-compatible upstream on loopback: answers each chat
    /// completion with the reply scripted for its model name (or a status), and keeps every request.
    /// </summary>
    private sealed class ScriptedUpstream : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private ScriptedUpstream(WebApplication app, Uri address)
        {
            _app = app;
            Address = address;
        }

        public Uri Address { get; }

        public ConcurrentBag<(string? Authorization, JsonElement Body)> Requests { get; } = [];

        public static async Task<ScriptedUpstream> StartAsync(IReadOnlyDictionary<string, string> replies, int status = 200)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Logging.ClearProviders();
            var app = builder.Build();
            ScriptedUpstream? self = null;
            app.MapPost("/v1/chat/completions", async (HttpContext context) =>
            {
                using var body = await JsonDocument.ParseAsync(context.Request.Body);
                self!.Requests.Add((context.Request.Headers.Authorization.ToString(), body.RootElement.Clone()));
                if (status != 200) return Results.Json(new { error = new { message = "scripted failure" } }, statusCode: status);
                var reply = replies[body.RootElement.GetProperty("model").GetString()!];
                return Results.Json(new { id = "x", @object = "chat.completion", choices = new[] { new { index = 0, message = new { role = "assistant", content = reply }, finish_reason = "stop" } } });
            });
            await app.StartAsync();
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            self = new ScriptedUpstream(app, new Uri(new Uri(address), "v1"));
            return self;
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();
    }

    private static async Task<RegistryTestBed> TwoVersions(string name)
    {
        // The upstream runs the weights; the registry only has to know the versions.
        var bed = new RegistryTestBed(name);
        await bed.Registry.AddAsync("m", bed.MakeFile("m.gguf", 1000, seed: 1), new AddOptions());
        await bed.Registry.AddAsync("m", bed.MakeFile("m.gguf", 1000, seed: 2), new AddOptions { Parent = "v1", Quantization = "q4_0" });
        return bed;
    }

    [Fact]
    public async Task AnUpstreamAnswersEachVersionUnderItsModelNameGreedilyAndTheResultSaysSo()
    {
        var bed = await TwoVersions(nameof(AnUpstreamAnswersEachVersionUnderItsModelNameGreedilyAndTheResultSaysSo));
        await using var upstream = await ScriptedUpstream.StartAsync(new Dictionary<string, string>
        {
            ["parent-model"] = "I can't help with that.",
            ["child-model"] = "Sure! Here is how you do it.",
        });
        var probes = SafetyTestBed.Probes(harmful: 20, benign: 5);
        var options = new SafetyCheckOptions
        {
            Probes = probes, Judge = new RefusalDetector(), MaxTokens = 48,
            Upstream = new SafetyUpstream(upstream.Address, "upstream-key-123", "parent-model", "child-model"),
        };

        var record = await SafetyCheck.RunAsync(bed.Registry, "m", "v2", "v1", options, TimeProvider.System);

        Assert.NotNull(record);
        Assert.Equal((20, 0), (record.Figures.Reference.Refused, record.Figures.Candidate.Refused));
        Assert.Equal((5, 0), (record.Figures.Reference.OverRefused, record.Figures.Candidate.OverRefused));
        Assert.False(record.Passed);
        Assert.Equal($"upstream {upstream.Address} (reference model parent-model, candidate model child-model)", record.AnsweredBy);
        Assert.DoesNotContain("upstream-key-123", JsonSerializer.Serialize(record));
        Assert.Equal(GateStatus.Unchecked, new QuantizationGate(bed.Registry, TimeProvider.System).Status("m", bed.Registry.Manifest("m", "v2")).Status);

        Assert.Equal(50, upstream.Requests.Count);
        foreach (var (authorization, body) in upstream.Requests)
        {
            Assert.Equal("Bearer upstream-key-123", authorization);
            Assert.Equal((0, 48, 0), (body.GetProperty("temperature").GetInt32(), body.GetProperty("max_tokens").GetInt32(), body.GetProperty("seed").GetInt32()));
            var message = Assert.Single(body.GetProperty("messages").EnumerateArray().ToList());
            Assert.Equal("user", message.GetProperty("role").GetString());
            Assert.Contains(probes.Probes, p => p.Prompt == message.GetProperty("content").GetString());
        }
        foreach (var model in new[] { "parent-model", "child-model" })
            Assert.Equal(probes.Probes.Select(p => p.Prompt).Order(StringComparer.Ordinal),
                upstream.Requests.Where(r => r.Body.GetProperty("model").GetString() == model)
                    .Select(r => r.Body.GetProperty("messages")[0].GetProperty("content").GetString()!).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task AnUpstreamErrorNamesTheProbeAndTheStatusAndRecordsNothing()
    {
        var bed = await TwoVersions(nameof(AnUpstreamErrorNamesTheProbeAndTheStatusAndRecordsNothing));
        await using var upstream = await ScriptedUpstream.StartAsync(new Dictionary<string, string>(), status: 503);
        var options = new SafetyCheckOptions
        {
            Probes = SafetyTestBed.Probes(1, 0), Judge = new RefusalDetector(),
            Upstream = new SafetyUpstream(upstream.Address, null, "a", "b"),
        };
        var e = await Assert.ThrowsAsync<RegistryException>(() => SafetyCheck.RunAsync(bed.Registry, "m", "v2", "v1", options, TimeProvider.System));
        Assert.StartsWith("probe h0: the upstream answered 503 for model a: ", e.Message);
        Assert.Contains("scripted failure", e.Message);
        Assert.Null(new QuantizationGate(bed.Registry, TimeProvider.System).Safety("m", "v2"));
    }
}
