using Bulwark.Engine.Formats;
using Bulwark.Engine.Synthesis;
using Bulwark.Server.Hosting;
using Bulwark.Server.Security;
using Bulwark.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Tests.Hosting;

/// <summary><c>serve --quantize</c> (<c>Bulwark:Serve:Quantize</c>): validated with the other settings, applied by the embedded loader.</summary>
public sealed class ServeQuantizeTests
{
    private static Microsoft.AspNetCore.Builder.WebApplicationBuilder Builder(Dictionary<string, string?> flags)
    {
        var all = new Dictionary<string, string?> { ["Bulwark:Server:Port"] = "0", [ServerSettings.DataDirKey] = Fixtures.NewTempDirectory("serve-q"), ["Bulwark:Serve:KvCacheMemory"] = "16MiB" };
        foreach (var (k, v) in flags) all[k] = v;
        var builder = BulwarkServer.CreateBuilder([], all);
        builder.Logging.ClearProviders();
        return builder;
    }

    [Fact]
    public async Task AnUnknownQuantizeValueIsRefusedBeforeTheModelLoads()
    {
        var e = await Assert.ThrowsAsync<ServerConfigurationException>(() => ServeHost.StartAsync(Builder(new() { ["Bulwark:Serve:Quantize"] = "q5_k" }), TextWriter.Null,
            (_, _) => throw new InvalidOperationException("must not load")));
        Assert.Equal("Bulwark:Serve:Quantize must be q8_0 or q4_0 (or none); got 'q5_k'.", Assert.Single(e.Problems));
    }

    [Fact]
    public async Task AFolderServedWithQuantizeAnswersAsTheQuantizedGgufDoes()
    {
        var spec = new SyntheticModelSpec
        {
            Architecture = "qwen2", DType = GgmlType.F32, Layers = 2, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 128, Vocab = 512, Context = 256, Seed = 5,
            ChatTemplate = SyntheticModel.ChatMlTemplate,
        };
        var models = Fixtures.NewTempDirectory("serve-q-models");
        var folder = Path.Combine(models, "synthetic");
        SyntheticModel.WriteSafetensors(spec, folder);
        var gguf = Path.Combine(models, "synthetic.gguf");
        SyntheticModel.WriteGguf(spec with { DType = GgmlType.Q8_0 }, gguf);

        async Task<(string Text, string Output)> Complete(string model, string? quantize)
        {
            var output = new StringWriter();
            await using var host = await ServeHost.StartAsync(Builder(new() { ["Bulwark:Serve:Model"] = model, ["Bulwark:Serve:Quantize"] = quantize }), output);
            var key = (await host.App.Services.GetRequiredService<KeyIssuer>().CreateAsync(new KeySpec { Name = "t" }, "tests")).Key;
            using var http = new HttpClient { BaseAddress = host.Address };
            http.DefaultRequestHeaders.Authorization = new("Bearer", key);
            var body = $$"""{"model":"{{host.Model!.Id}}","prompt":"Hello there","max_tokens":12,"temperature":0}""";
            using var response = await http.PostAsync("v1/completions", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, text);
            using var json = System.Text.Json.JsonDocument.Parse(text);
            return (json.RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!, output.ToString());
        }

        var (quantized, report) = await Complete(folder, "q8_0");
        Assert.Contains("synthetic: quantized 16 matrices to Q8_0 at load", report);
        Assert.Equal((await Complete(gguf, null)).Text, quantized);
    }
}
