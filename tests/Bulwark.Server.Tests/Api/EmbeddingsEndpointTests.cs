using Bulwark.Engine.Model;
using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text.Json;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Model.Reference;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Embeddings;
using Bulwark.Engine.Synthesis;
using Bulwark.Server.Api;
using Bulwark.Server.Audit;
using Bulwark.Server.Backends.Embedded;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Hosting;
using Bulwark.Testing;
using Microsoft.Extensions.DependencyInjection;
using OpenAI.Embeddings;

namespace Bulwark.Server.Tests.Api;

/// <summary>
/// <c>POST /v1/embeddings</c> on a synthetic embedding model served by the embedded engine, behind the security
/// front: every input form, both encodings (the official OpenAI SDK among the clients), dimensions, the limits at,
/// below and above, the model that is not an embedding model, and keys, ACLs, quotas and audit as for generation.
/// Expected vectors come from <see cref="ReferenceEmbedding"/> (one token at a time), not from the engine.
/// </summary>
public sealed class EmbeddingsEndpointTests
{
    private const int Context = 32;

    private static readonly SyntheticModelSpec Spec = new() { Architecture = "qwen3", Pooling = PoolingType.Last, Context = Context, Seed = 18 };

    internal static readonly Lazy<string> EmbeddingModel = new(() => Write(Spec));
    private static readonly Lazy<string> Generator = new(() => Write(Spec with { Pooling = PoolingType.None }));

    private static string Write(SyntheticModelSpec spec)
    {
        var path = Path.Combine(Fixtures.NewTempDirectory("embeddings"), "embedder.gguf");
        SyntheticModel.WriteGguf(spec, path);
        return path;
    }

    internal static EmbeddedBackend Backend(string? path = null, EmbeddingSettings? settings = null) =>
        EmbeddedModelLoader.Load(path ?? EmbeddingModel.Value, "embedder", null, new EngineOptions { KvCacheBlocks = 64, BlockSize = 8 }, embeddings: settings);

    private static async Task<RunningServer> Serve(EmbeddingSettings? settings = null, Dictionary<string, string?>? config = null, string? path = null) =>
        await RunningServer.StartAsync(Backend(path, settings), config);

    private static float[] Expected(EmbeddedBackend backend, string text, PoolingType pooling = PoolingType.Last) => Expected(backend.Encode(text, addSpecialTokens: true), pooling);

    internal static float[] Expected(int[] tokens, PoolingType pooling = PoolingType.Last, string? path = null)
    {
        using var model = ModelLoader.Load(path ?? EmbeddingModel.Value);
        return ReferenceEmbedding.Embed(model, tokens, pooling);
    }

    internal static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        Assert.True(EmbeddingVector.Cosine(expected, actual) >= 0.99999, $"cosine {EmbeddingVector.Cosine(expected, actual)}");
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 1e-4f);
    }

    internal static float[] Floats(JsonElement item) => item.GetProperty("embedding").EnumerateArray().Select(x => x.GetSingle()).ToArray();

    internal static float[] FromBase64(JsonElement item)
    {
        var bytes = Convert.FromBase64String(item.GetProperty("embedding").GetString()!);
        var floats = new float[bytes.Length / 4];
        for (var i = 0; i < floats.Length; i++) floats[i] = System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * 4));
        return floats;
    }

    private static Task<(int Status, JsonElement Body, HttpResponseMessage Response)> Post(RunningServer server, string json, HttpClient? client = null) =>
        RawHttp.PostJsonAsync(client ?? server.Http, "v1/embeddings", json);

    private static string Tokens(int count, int id = 7) => "[" + string.Join(",", Enumerable.Repeat(id, count)) + "]";

    [Fact]
    public async Task TheOpenAiSdkGetsTheReferenceVectorsAndFloatAndBase64AreTheSameBits()
    {
        await using var server = await Serve();
        var backend = (EmbeddedBackend)server.Get<Bulwark.Server.Backends.ServedModels>().Acquire("embedder", null).Backend;
        var client = server.OpenAI().GetEmbeddingClient("embedder");
        string[] texts = ["The quick brown fox", "jumps over the lazy dog", "a"];

        // The SDK asks for base64 and decodes it itself.
        OpenAIEmbeddingCollection sdk = await client.GenerateEmbeddingsAsync(texts);
        Assert.Equal(3, sdk.Count);
        for (var i = 0; i < texts.Length; i++)
        {
            Assert.Equal(i, sdk[i].Index);
            AssertClose(Expected(backend, texts[i]), sdk[i].ToFloats().ToArray());
        }
        var tokens = texts.Sum(t => backend.Encode(t, true).Length);
        Assert.Equal(tokens, sdk.Usage.InputTokenCount);
        Assert.Equal(tokens, sdk.Usage.TotalTokenCount);
        Assert.Equal("embedder", sdk.Model);

        // The SDK's protocol method with encoding_format float: its own model reads the arrays to the same floats.
        var body = BinaryContent.Create(BinaryData.FromString(JsonSerializer.Serialize(new { model = "embedder", input = texts, encoding_format = "float" })));
        var raw = await client.GenerateEmbeddingsAsync(body);
        var floats = ModelReaderWriter.Read<OpenAIEmbeddingCollection>(raw.GetRawResponse().Content)!;
        for (var i = 0; i < texts.Length; i++)
            Assert.Equal(sdk[i].ToFloats().ToArray(), floats[i].ToFloats().ToArray());

        // Token-id inputs through the SDK.
        OpenAIEmbeddingCollection byIds = await client.GenerateEmbeddingsAsync([new ReadOnlyMemory<int>([5, 6, 7]), new ReadOnlyMemory<int>([9])]);
        AssertClose(Expected([5, 6, 7]), byIds[0].ToFloats().ToArray());
        AssertClose(Expected([9]), byIds[1].ToFloats().ToArray());
        Assert.Equal(4, byIds.Usage.InputTokenCount);
    }

    [Fact]
    public async Task EveryInputFormGivesTheResponseShapeOpenAiDefines()
    {
        await using var server = await Serve();

        var (status, one, _) = await Post(server, """{"model":"embedder","input":[1,2,3],"user":"u-1"}""");
        Assert.Equal(200, status);
        Assert.Equal("list", one.GetProperty("object").GetString());
        Assert.Equal("embedder", one.GetProperty("model").GetString());
        var item = Assert.Single(one.GetProperty("data").EnumerateArray());
        Assert.Equal("embedding", item.GetProperty("object").GetString());
        Assert.Equal(0, item.GetProperty("index").GetInt32());
        AssertClose(Expected([1, 2, 3]), Floats(item));
        Assert.Equal(3, one.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(3, one.GetProperty("usage").GetProperty("total_tokens").GetInt32());

        var (_, many, _) = await Post(server, """{"model":"embedder","input":[[1,2,3],[4],[1,2,3]],"encoding_format":"base64"}""");
        var data = many.GetProperty("data").EnumerateArray().ToArray();
        Assert.Equal([0, 1, 2], data.Select(d => d.GetProperty("index").GetInt32()));
        // Alone or batched with others, the same input (the batch's kernels may sum in another order: close, not bit-equal).
        AssertClose(Floats(item), FromBase64(data[0]));
        AssertClose(FromBase64(data[0]), FromBase64(data[2]));
        AssertClose(Expected([4]), FromBase64(data[1]));
        Assert.Equal(7, many.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        var (_, text, _) = await Post(server, """{"model":"embedder","input":"hello"}""");
        var (_, texts, _) = await Post(server, """{"model":"embedder","input":["hello","hello world"]}""");
        AssertClose(Floats(text.GetProperty("data")[0]), Floats(texts.GetProperty("data")[0]));
        Assert.Equal(1.0, Math.Sqrt(Floats(texts.GetProperty("data")[1]).Sum(x => (double)x * x)), 5);
    }

    [Theory]
    [InlineData("""{"model":"embedder"}""", "input", "missing_required_parameter")]
    [InlineData("""{"model":"embedder","input":""}""", "input", "string_below_min_length")]
    [InlineData("""{"model":"embedder","input":[]}""", "input", "array_below_min_length")]
    [InlineData("""{"model":"embedder","input":[[]]}""", "input[0]", "array_below_min_length")]
    [InlineData("""{"model":"embedder","input":["a",[1]]}""", "input[1]", "invalid_type")]
    [InlineData("""{"model":"embedder","input":[1,"a"]}""", "input[1]", "invalid_value")]
    [InlineData("""{"model":"embedder","input":[512]}""", "input[0]", "invalid_value")]
    [InlineData("""{"model":"embedder","input":{"a":1}}""", "input", "invalid_type")]
    [InlineData("""{"model":"embedder","input":"a","encoding_format":"int8"}""", "encoding_format", "invalid_value")]
    [InlineData("""{"model":"embedder","input":"a","dimensions":0}""", "dimensions", null)]
    public async Task BadBodiesAreA400NamingTheField(string json, string param, string? code)
    {
        await using var server = await Serve();
        var (status, body, _) = await Post(server, json);
        Assert.Equal(400, status);
        var error = RawHttp.Error(body);
        Assert.Equal(param, error.GetProperty("param").GetString());
        if (code is not null) Assert.Equal(code, error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task DimensionsCutOnlyAMatryoshkaModelAndMakeTheVectorUnitLengthAgain()
    {
        await using (var plain = await Serve())
        {
            Assert.Equal(200, (await Post(plain, """{"model":"embedder","input":[1,2],"dimensions":64}""")).Status);
            var (status, body, _) = await Post(plain, """{"model":"embedder","input":[1,2],"dimensions":32}""");
            Assert.Equal(400, status);
            Assert.Contains("not trained for shortened embeddings (Matryoshka), so dimensions must be its width 64; got 32", RawHttp.Error(body).GetProperty("message").GetString());
        }

        await using var matryoshka = await Serve(new EmbeddingSettings { MatryoshkaMinDimensions = 16 });
        var full = Expected([1, 2]);
        foreach (var d in new[] { 16, 17, 63 })
        {
            var (status, body, _) = await Post(matryoshka, $$"""{"model":"embedder","input":[1,2],"dimensions":{{d}}}""");
            Assert.Equal(200, status);
            var cut = full[..d];
            EmbeddingVector.NormalizeL2(cut);
            AssertClose(cut, Floats(body.GetProperty("data")[0]));
        }
        Assert.Equal(400, (await Post(matryoshka, """{"model":"embedder","input":[1,2],"dimensions":15}""")).Status);
        Assert.Equal(400, (await Post(matryoshka, """{"model":"embedder","input":[1,2],"dimensions":65}""")).Status);
    }

    [Fact]
    public async Task AnInputLongerThanTheContextIsA400NeverCutSilently()
    {
        await using var server = await Serve();
        Assert.Equal(200, (await Post(server, $$"""{"model":"embedder","input":{{Tokens(Context - 1)}}}""")).Status);
        Assert.Equal(200, (await Post(server, $$"""{"model":"embedder","input":[{{Tokens(Context)}}]}""")).Status);
        var (status, body, _) = await Post(server, $$"""{"model":"embedder","input":[[1],{{Tokens(Context + 1)}}]}""");
        Assert.Equal(400, status);
        var error = RawHttp.Error(body);
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        Assert.Equal("input[1]", error.GetProperty("param").GetString());
        Assert.Contains($"maximum context length is {Context} tokens, however input[1] has {Context + 1} tokens", error.GetProperty("message").GetString());

        // Text that tokenizes past the context is refused the same way, after tokenizing.
        var (textStatus, textBody, _) = await Post(server, $$"""{"model":"embedder","input":"{{string.Join(" ", Enumerable.Repeat("hello", 200))}}"}""");
        Assert.Equal(400, textStatus);
        Assert.Equal("context_length_exceeded", RawHttp.Error(textBody).GetProperty("code").GetString());
    }

    [Fact]
    public async Task BatchSizeAndTotalTokensAreBoundedAtBelowAndAbove()
    {
        await using var server = await Serve(config: new() { ["Bulwark:Limits:MaxEmbeddingInputs"] = "3", ["Bulwark:Limits:MaxEmbeddingTokens"] = "40" });
        string Batch(int inputs, int tokensEach) => $$"""{"model":"embedder","input":[{{string.Join(",", Enumerable.Repeat(Tokens(tokensEach), inputs))}}]}""";

        Assert.Equal(200, (await Post(server, Batch(2, 5))).Status);
        Assert.Equal(200, (await Post(server, Batch(3, 5))).Status);
        var (status, body, _) = await Post(server, Batch(4, 5));
        Assert.Equal(400, status);
        Assert.Equal("array_above_max_length", RawHttp.Error(body).GetProperty("code").GetString());
        Assert.Contains("at most 3 items; got 4", RawHttp.Error(body).GetProperty("message").GetString());

        Assert.Equal(200, (await Post(server, $$"""{"model":"embedder","input":[{{Tokens(20)}},{{Tokens(19)}}]}""")).Status);
        Assert.Equal(200, (await Post(server, $$"""{"model":"embedder","input":[{{Tokens(20)}},{{Tokens(20)}}]}""")).Status);
        (status, body, _) = await Post(server, $$"""{"model":"embedder","input":[{{Tokens(20)}},{{Tokens(21)}}]}""");
        Assert.Equal(400, status);
        Assert.Contains("at most 40 tokens in all; got 41", RawHttp.Error(body).GetProperty("message").GetString());
    }

    [Fact]
    public async Task AGeneratorRefusesEmbeddingsUnlessTheOperatorChoosesAPooling()
    {
        await using (var refusing = await Serve(path: Generator.Value))
        {
            var (status, body, _) = await Post(refusing, """{"model":"embedder","input":"hi"}""");
            Assert.Equal(400, status);
            Assert.Equal("model_not_embedding", RawHttp.Error(body).GetProperty("code").GetString());
            Assert.Equal("model", RawHttp.Error(body).GetProperty("param").GetString());
        }
        await using var pooled = await Serve(new EmbeddingSettings { Pooling = PoolingType.Mean }, path: Generator.Value);
        var (ok, vector, _) = await Post(pooled, """{"model":"embedder","input":[3,4,5]}""");
        Assert.Equal(200, ok);
        AssertClose(Expected([3, 4, 5], PoolingType.Mean, Generator.Value), Floats(vector.GetProperty("data")[0]));

        // And an embedding model the operator turns off.
        await using var off = await Serve(new EmbeddingSettings { Pooling = PoolingType.None });
        Assert.Equal(400, (await Post(off, """{"model":"embedder","input":"hi"}""")).Status);
    }

    [Fact]
    public async Task KeysModelAclsTokenQuotasAndAuditApplyAsForGeneration()
    {
        await using var server = await Serve();
        var issuer = server.Get<KeyIssuer>();
        var otherModel = await issuer.CreateAsync(new KeySpec { Name = "other", Models = ["other-model"] }, "test");
        var fits = await issuer.CreateAsync(new KeySpec { Name = "fits", Limits = new KeyLimits(0, 10, 0, 0) }, "test");
        const string FiveTokens = """{"model":"embedder","input":[[1,2],[3,4,5]]}""";

        Assert.Equal(401, (await Post(server, FiveTokens, server.Client(null))).Status);
        Assert.Equal(404, (await Post(server, FiveTokens, server.Client(otherModel.Key))).Status);

        // 10 tokens a minute: two requests of 5 fit, the third does not; the 429 names what it needed.
        Assert.Equal(200, (await Post(server, FiveTokens, server.Client(fits.Key))).Status);
        Assert.Equal(200, (await Post(server, FiveTokens, server.Client(fits.Key))).Status);
        var (status, error, _) = await Post(server, FiveTokens, server.Client(fits.Key));
        Assert.Equal(429, status);
        Assert.Equal("tokens", RawHttp.Error(error).GetProperty("code").GetString());

        var services = server.App.Services;
        await services.GetRequiredService<AuditWriter>().FlushAsync();
        var records = await services.GetRequiredService<SecurityStorage>().Audit.ReadRecentAsync(50, AuditRecord.RequestKind);
        var embedded = records.Where(r => r.Route == "POST /v1/embeddings" && r.Status == 200).ToList();
        Assert.Equal(2, embedded.Count);
        Assert.All(embedded, r => Assert.Equal(5, r.PromptTokens));
        Assert.All(embedded, r => Assert.Equal(0, r.CompletionTokens));
        Assert.All(embedded, r => Assert.Equal("embedder", r.Model));
        Assert.Contains(records, r => r.Route == "POST /v1/embeddings" && r.Status == 429);

        var metrics = await server.Metrics.GetStringAsync("metrics");
        Assert.Contains("route=\"/v1/embeddings\",status=\"200\"", metrics);
    }

    [Theory]
    [InlineData("model", null)]
    [InlineData("", null)]
    [InlineData("none", PoolingType.None)]
    [InlineData("mean", PoolingType.Mean)]
    [InlineData("last", PoolingType.Last)]
    [InlineData("cls", PoolingType.Cls)]
    public void ThePoolingSettingParses(string text, PoolingType? expected)
    {
        var options = new Bulwark.Server.Models.ServeOptions { EmbeddingPooling = text };
        Assert.Empty(options.Validate());
        Assert.Equal(expected, options.Embeddings.Pooling);
    }

    [Fact]
    public void EmbeddingSettingsAndLimitsOutOfRangeStopTheServerNamingTheSetting()
    {
        Assert.Contains(new Bulwark.Server.Models.ServeOptions { EmbeddingPooling = "max" }.Validate(), p => p.Contains("EmbeddingPooling must be model, none, mean, cls or last; got 'max'"));
        Assert.Contains(new Bulwark.Server.Models.ServeOptions { EmbeddingMatryoshkaMinDimensions = -1 }.Validate(), p => p.Contains("EmbeddingMatryoshkaMinDimensions"));
        Assert.Empty(new ApiLimits { MaxEmbeddingInputs = 1, MaxEmbeddingTokens = 1 }.Validate());
        Assert.Empty(new ApiLimits { MaxEmbeddingInputs = 100_000, MaxEmbeddingTokens = 100_000_000 }.Validate());
        Assert.Equal(2, new ApiLimits { MaxEmbeddingInputs = 0, MaxEmbeddingTokens = 0 }.Validate().Count());
        Assert.Equal(2, new ApiLimits { MaxEmbeddingInputs = 100_001, MaxEmbeddingTokens = 100_000_001 }.Validate().Count());
    }
}
