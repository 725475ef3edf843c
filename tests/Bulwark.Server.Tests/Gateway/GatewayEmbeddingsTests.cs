using System.Text.Json;
using Bulwark.Bench.Http;
using Bulwark.Server.Audit;
using Bulwark.Server.Hosting;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Cli;
using Bulwark.Server.Tests.Hosting;
using Bulwark.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenAI;
using OpenAI.Embeddings;

namespace Bulwark.Server.Tests.Gateway;

/// <summary>
/// <c>/v1/embeddings</c> through the gateway to real Bulwark servers serving a synthetic embedding model: the official
/// OpenAI SDK gets the upstream's own vectors and usage, the gateway's keys, ACLs, quotas and audit apply, a response an
/// endpoint cuts is retried on another before the client sees anything, and a TGI pool refuses clearly.
/// </summary>
public sealed class GatewayEmbeddingsTests
{
    private static readonly string[] Texts = ["The quick brown fox", "jumps over the lazy dog", "a"];

    private static string Body(string extra = "") => JsonSerializer.Serialize(new { model = "embedder", input = Texts })[..^1] + extra + "}";

    [Fact]
    public async Task TheOpenAiSdkThroughTheGatewayGetsTheUpstreamsVectorsAndUsageAndTheAuditNamesTheEndpoint()
    {
        await using var gateway = await TestGateway.StartAsync([EmbeddingsEndpointTests.Backend()]);
        OpenAIEmbeddingCollection direct = await gateway.Upstreams[0].OpenAI().GetEmbeddingClient("embedder").GenerateEmbeddingsAsync(Texts);

        // The SDK asks for base64 and decodes it: the same bits as asking the upstream directly, and the upstream's count of tokens.
        OpenAIEmbeddingCollection relayed = await gateway.OpenAI().GetEmbeddingClient("embedder").GenerateEmbeddingsAsync(Texts);
        Assert.Equal(Texts.Length, relayed.Count);
        for (var i = 0; i < Texts.Length; i++)
        {
            Assert.Equal(i, relayed[i].Index);
            Assert.Equal(direct[i].ToFloats().ToArray(), relayed[i].ToFloats().ToArray());
        }
        Assert.Equal(direct.Usage.InputTokenCount, relayed.Usage.InputTokenCount);
        Assert.Equal("embedder", relayed.Model);
        var width = direct[0].ToFloats().Length;

        // encoding_format float: the same values as JSON numbers.
        var (status, body, _) = await RawHttp.PostJsonAsync(gateway.Http, "v1/embeddings", Body(",\"encoding_format\":\"float\""));
        Assert.Equal(200, status);
        var data = body.GetProperty("data").EnumerateArray().ToList();
        for (var i = 0; i < Texts.Length; i++) Assert.Equal(direct[i].ToFloats().ToArray(), EmbeddingsEndpointTests.Floats(data[i]));

        // Token ids are relayed as ids, and the gateway counts them exactly.
        OpenAIEmbeddingCollection byIds = await gateway.OpenAI().GetEmbeddingClient("embedder").GenerateEmbeddingsAsync([new ReadOnlyMemory<int>([5, 6, 7]), new ReadOnlyMemory<int>([9])]);
        EmbeddingsEndpointTests.AssertClose(EmbeddingsEndpointTests.Expected([5, 6, 7]), byIds[0].ToFloats().ToArray());
        Assert.Equal(4, byIds.Usage.InputTokenCount);

        // dimensions goes to the upstream, which judges it: its own width is fine, a shorter one this model was not trained for is refused.
        Assert.Equal(200, (await RawHttp.PostJsonAsync(gateway.Http, "v1/embeddings", Body($",\"dimensions\":{width}"))).Status);
        (status, body, _) = await RawHttp.PostJsonAsync(gateway.Http, "v1/embeddings", Body(",\"dimensions\":4"));
        Assert.Equal(400, status);
        Assert.Equal("upstream_rejected", RawHttp.Error(body).GetProperty("code").GetString());

        // Input the gateway refuses itself never leaves it: past the context the upstream reported (32 tokens).
        (status, body, _) = await RawHttp.PostJsonAsync(gateway.Http, "v1/embeddings", "{\"model\":\"embedder\",\"input\":[" + string.Join(",", Enumerable.Repeat(7, 33)) + "]}");
        Assert.Equal(400, status);
        Assert.Equal("context_length_exceeded", RawHttp.Error(body).GetProperty("code").GetString());

        var services = gateway.Host.App.Services;
        await services.GetRequiredService<AuditWriter>().FlushAsync();
        var records = await services.GetRequiredService<SecurityStorage>().Audit.ReadRecentAsync(50, AuditRecord.RequestKind);
        var embedded = records.Where(r => r.Route == "POST /v1/embeddings" && r.Status == 200).ToList();
        Assert.Equal(4, embedded.Count);
        Assert.All(embedded, r => Assert.Equal($"http://127.0.0.1:{gateway.Proxies[0].Address().Port}", r.Upstream));
        Assert.All(embedded, r => Assert.Equal("embedder", r.Model));
        // Charged as the upstream counted (settled from its usage), never the gateway's estimate.
        Assert.Equal(3, embedded.Count(r => r.PromptTokens == direct.Usage.InputTokenCount));
        Assert.Contains(embedded, r => r.PromptTokens == 4);
        Assert.Contains("bulwark_upstream_requests_total{", await gateway.Metrics.GetStringAsync("metrics"));
    }

    [Fact]
    public async Task AGatewayInFrontOfABulwarkServeProcessGivesTheSdkTheProcesssOwnVectors()
    {
        // The upstream: the CLI's own `bulwark serve --model embedder.gguf`, with a key made in its store beforehand.
        var dir = Fixtures.NewTempDirectory("embedding-upstream");
        var data = DataDirectory.Resolve(dir).EnsureCreated();
        string upstreamKey;
        await using (var storage = await SecurityStorage.OpenAsync(data, new StorageOptions()))
            upstreamKey = (await new KeyIssuer(storage, new ApiKeyHasher(ServerSecret.Load(null, data.StatePath)), TimeProvider.System)
                .CreateAsync(new KeySpec { Name = "gateway" }, "test")).Key;
        var model = Path.Combine(dir, "embedder.gguf");
        File.Copy(EmbeddingsEndpointTests.EmbeddingModel.Value, model);
        await using var upstream = await ServeProcess.StartAsync(BuiltCli.Path, new Dictionary<string, string>(), dir, "--model", model, "--kv-cache-memory", "16MiB");

        var variable = "BULWARK_TEST_UPSTREAM_KEY_" + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(variable, upstreamKey);
        var builder = BulwarkServer.CreateBuilder([], new Dictionary<string, string?>
        {
            ["Bulwark:Server:Port"] = "0",
            [ServerSettings.DataDirKey] = Fixtures.NewTempDirectory("gateway"),
            ["Bulwark:Upstreams:embed:Endpoints:0:Url"] = new Uri(upstream.Address, "v1").ToString(),
            ["Bulwark:Upstreams:embed:ApiKeyEnv"] = variable,
        });
        builder.Logging.ClearProviders();
        await using var gateway = await ServeHost.StartAsync(builder, new StringWriter());
        var key = (await gateway.App.Services.GetRequiredService<KeyIssuer>().CreateAsync(new KeySpec { Name = "app" }, "test")).Key;
        OpenAIClient Sdk(Uri address, string apiKey) =>
            new(new System.ClientModel.ApiKeyCredential(apiKey), new OpenAIClientOptions { Endpoint = new Uri(address, "v1"), NetworkTimeout = TimeSpan.FromSeconds(60) });

        OpenAIEmbeddingCollection direct = await Sdk(upstream.Address, upstreamKey).GetEmbeddingClient("embedder").GenerateEmbeddingsAsync(Texts);
        OpenAIEmbeddingCollection relayed = await Sdk(gateway.Address, key).GetEmbeddingClient("embedder").GenerateEmbeddingsAsync(Texts);
        Assert.Equal(Texts.Length, relayed.Count);
        for (var i = 0; i < Texts.Length; i++) Assert.Equal(direct[i].ToFloats().ToArray(), relayed[i].ToFloats().ToArray());
        Assert.Equal(direct.Usage.InputTokenCount, relayed.Usage.InputTokenCount);
        // And they are the model's: the reference embedding of the same tokens (the process tokenizes; the SDK sends ids here).
        OpenAIEmbeddingCollection ids = await Sdk(gateway.Address, key).GetEmbeddingClient("embedder").GenerateEmbeddingsAsync([new ReadOnlyMemory<int>([5, 6, 7])]);
        EmbeddingsEndpointTests.AssertClose(EmbeddingsEndpointTests.Expected([5, 6, 7]), ids[0].ToFloats().ToArray());
    }

    [Fact]
    public async Task TheGatewaysKeysAclsAndTokenQuotasApply()
    {
        await using var gateway = await TestGateway.StartAsync([EmbeddingsEndpointTests.Backend()]);
        var issuer = gateway.Host.App.Services.GetRequiredService<KeyIssuer>();
        var otherModel = await issuer.CreateAsync(new KeySpec { Name = "other", Models = ["other-model"] }, "test");
        var small = await issuer.CreateAsync(new KeySpec { Name = "small", Limits = new KeyLimits(0, 10, 0, 0) }, "test");

        Assert.Equal(401, (await RawHttp.PostJsonAsync(gateway.Client(null), "v1/embeddings", Body())).Status);
        Assert.Equal(401, (await RawHttp.PostJsonAsync(gateway.Client(gateway.UpstreamKey), "v1/embeddings", Body())).Status);
        Assert.Equal(404, (await RawHttp.PostJsonAsync(gateway.Client(otherModel.Key), "v1/embeddings", Body())).Status);
        // 10 tokens a minute; 60 characters are estimated at 15 tokens (no tokenizer is configured for the model): refused before the upstream.
        var (status, error, _) = await RawHttp.PostJsonAsync(gateway.Client(small.Key), "v1/embeddings", JsonSerializer.Serialize(new { model = "embedder", input = new string('x', 60) }));
        Assert.Equal(429, status);
        Assert.Equal("tokens", RawHttp.Error(error).GetProperty("code").GetString());
        Assert.Equal(200, (await RawHttp.PostJsonAsync(gateway.Client(small.Key), "v1/embeddings", """{"model":"embedder","input":"hi"}""")).Status);
    }

    [Fact]
    public async Task AResponseOneEndpointCutsIsRetriedOnTheOtherBeforeTheClientSeesAnything()
    {
        await using var gateway = await TestGateway.StartAsync([EmbeddingsEndpointTests.Backend(), EmbeddingsEndpointTests.Backend()], pool: new() { ["HealthInterval"] = "00:10:00" });
        var expected = (await RawHttp.PostJsonAsync(gateway.Upstreams[1].Http, "v1/embeddings", Body(",\"encoding_format\":\"float\""))).Body.GetProperty("data").GetRawText();
        // The response head and part of the body pass, then the connection is reset.
        gateway.Proxies[0].CutAfterBytes = 400;
        gateway.Proxies[0].Mode = FaultProxy.Fault.CutResponse;
        for (var i = 0; i < 6; i++)
        {
            var (status, body, _) = await RawHttp.PostJsonAsync(gateway.Http, "v1/embeddings", Body(",\"encoding_format\":\"float\""));
            Assert.True(status == 200, $"request {i}: {status} {body}");
            Assert.Equal(expected, body.GetProperty("data").GetRawText());
        }
        var metrics = await gateway.Metrics.GetStringAsync("metrics");
        var endpoint = $"endpoint=\"http://127.0.0.1:{gateway.Proxies[0].Address().Port}\"";
        Assert.Contains(metrics.Split('\n'), l => l.StartsWith($"bulwark_upstream_retries_total{{{endpoint}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ATgiPoolRefusesEmbeddingsWithA400NamingTheProtocol()
    {
        await using var gateway = await TestGateway.StartAsync([new ScriptedBackend()], pool: new() { ["Protocol"] = "tgi", ["Models:0"] = "tgi-model" }, basePath: "");
        var (status, body, _) = await RawHttp.PostJsonAsync(gateway.Http, "v1/embeddings", """{"model":"tgi-model","input":"hi"}""");
        Assert.Equal(400, status);
        var error = RawHttp.Error(body);
        Assert.Equal("model_not_embedding", error.GetProperty("code").GetString());
        Assert.Contains("TGI's protocol", error.GetProperty("message").GetString());
    }
}
