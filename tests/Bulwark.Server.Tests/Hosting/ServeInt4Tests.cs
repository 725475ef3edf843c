using Bulwark.Engine.Formats;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Synthesis;
using Bulwark.Server.Hosting;
using Bulwark.Server.Security;
using Bulwark.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Tests.Hosting;

/// <summary><c>bulwark serve</c> on an AWQ folder: it loads repacked and answers a chat completion.</summary>
public sealed class ServeInt4Tests
{
    [Fact]
    public async Task AnAwqFolderIsServedAndAnswersAChat()
    {
        var spec = new SyntheticModelSpec
        {
            Architecture = "qwen2", DType = GgmlType.F16, Layers = 2, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 128, Vocab = 512, Context = 256, Seed = 9,
            ChatTemplate = SyntheticModel.ChatMlTemplate,
        };
        var folder = Path.Combine(Fixtures.NewTempDirectory("serve-awq-models"), "synthetic-awq");
        SyntheticInt4.Write(spec, folder, new Int4WriteOptions { Method = Int4Method.Awq, GroupSize = 32 });
        var flags = new Dictionary<string, string?>
        {
            ["Bulwark:Server:Port"] = "0", [ServerSettings.DataDirKey] = Fixtures.NewTempDirectory("serve-awq"), ["Bulwark:Serve:KvCacheMemory"] = "16MiB",
            ["Bulwark:Serve:Model"] = folder,
        };
        var builder = BulwarkServer.CreateBuilder([], flags);
        builder.Logging.ClearProviders();
        var report = new StringWriter();
        await using var host = await ServeHost.StartAsync(builder, report);
        Assert.Contains("synthetic-awq: repacked 14 AWQ 4-bit (group 32) matrices to Q4_1 at load", report.ToString());
        var key = (await host.App.Services.GetRequiredService<KeyIssuer>().CreateAsync(new KeySpec { Name = "t" }, "tests")).Key;
        using var http = new HttpClient { BaseAddress = host.Address };
        http.DefaultRequestHeaders.Authorization = new("Bearer", key);

        async Task<(string Content, int Completion)> Chat()
        {
            var body = $$"""{"model":"{{host.Model!.Id}}","messages":[{"role":"user","content":"Hello there"}],"max_tokens":8,"temperature":0}""";
            using var response = await http.PostAsync("v1/chat/completions", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, text);
            using var json = System.Text.Json.JsonDocument.Parse(text);
            var completion = json.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
            return (json.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!, completion);
        }

        var (first, tokens) = await Chat();
        Assert.InRange(tokens, 1, 8);
        Assert.Equal(first, (await Chat()).Content); // greedy: the same answer twice
    }
}
