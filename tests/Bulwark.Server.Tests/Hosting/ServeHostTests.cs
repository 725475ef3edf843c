using Bulwark.Server.Hosting;
using Bulwark.Server.Models;
using Bulwark.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Tests.Hosting;

/// <summary><c>bulwark serve</c>'s composition: settings checked first, model resolved, first admin key, start-up report.</summary>
public sealed class ServeHostTests
{
    private static Microsoft.AspNetCore.Builder.WebApplicationBuilder Builder(string dataDir, Dictionary<string, string?>? flags = null)
    {
        var all = new Dictionary<string, string?> { ["Bulwark:Server:Port"] = "0", [ServerSettings.DataDirKey] = dataDir };
        foreach (var (k, v) in flags ?? []) all[k] = v;
        var builder = BulwarkServer.CreateBuilder([], all);
        builder.Logging.ClearProviders();
        return builder;
    }

    private static Backends.IGenerationBackend Alphabet(ModelSource source, ServeOptions options) => AlphabetModel.Backend(notice: source.Notice);

    [Fact]
    public async Task FirstStartPrintsOneAdminKeyThatManagesKeysAndLaterStartsPrintNone()
    {
        var dataDir = Fixtures.NewTempDirectory("serve");
        var model = Path.Combine(dataDir, "alphabet.gguf");
        await File.WriteAllTextAsync(model, "stand-in: the test's loader never reads it");
        var flags = new Dictionary<string, string?> { ["Bulwark:Serve:Model"] = model };
        var output = new StringWriter();
        string adminKey;
        await using (var first = await ServeHost.StartAsync(Builder(dataDir, flags), output, Alphabet))
        {
            adminKey = first.InitialAdminKey!.Key;
            var text = output.ToString();
            Assert.Contains("  " + adminKey + Environment.NewLine, text);
            Assert.Contains($"Bulwark is serving 'alphabet' at {first.Address.ToString().TrimEnd('/')}", text);
            Assert.Contains("loopback only", text);
            Assert.Contains("not verified", text);

            using var admin = new HttpClient { BaseAddress = first.Address };
            admin.DefaultRequestHeaders.Authorization = new("Bearer", adminKey);
            using var created = await admin.PostAsync("admin/keys", new StringContent("""{"name":"my-app"}""", System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(System.Net.HttpStatusCode.Created, created.StatusCode);
            var apiKey = System.Text.Json.JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString();
            using var api = new HttpClient { BaseAddress = first.Address };
            api.DefaultRequestHeaders.Authorization = new("Bearer", apiKey);
            Assert.Contains("\"alphabet\"", await api.GetStringAsync("v1/models"));
            // The admin key itself cannot call the API.
            Assert.Equal(System.Net.HttpStatusCode.Forbidden, (await admin.GetAsync("v1/models")).StatusCode);
        }

        var again = new StringWriter();
        await using var second = await ServeHost.StartAsync(Builder(dataDir, flags), again, Alphabet);
        Assert.Null(second.InitialAdminKey);
        Assert.DoesNotContain("bwa_", again.ToString());
        Assert.DoesNotContain(adminKey, again.ToString());
    }

    [Fact]
    public async Task EveryInvalidSettingIsReportedBeforeTheModelLoads()
    {
        var loaded = false;
        var flags = new Dictionary<string, string?>
        {
            ["Bulwark:Server:Port"] = "70000",
            ["Bulwark:Serve:KvCacheMemory"] = "lots",
            ["Bulwark:Serve:MaxSequences"] = "0",
        };
        var e = await Assert.ThrowsAsync<ServerConfigurationException>(() => ServeHost.StartAsync(Builder(Fixtures.NewTempDirectory("serve"), flags), TextWriter.Null,
            (s, o) => { loaded = true; return Alphabet(s, o); }));
        Assert.False(loaded);
        Assert.Equal(3, e.Problems.Count);
        Assert.Contains(e.Problems, p => p.Contains("Port must be between 0 and 65535; got 70000"));
        Assert.Contains(e.Problems, p => p.Contains("KvCacheMemory must be a size such as 512MiB") && p.Contains("'lots'"));
        Assert.Contains(e.Problems, p => p.Contains("MaxSequences must be between 1 and 4096; got 0"));
    }

    [Fact]
    public async Task ATamperedRegisteredModelIsCountedAndAuditedWhileTheLoadedCopyKeepsServing()
    {
        var dataDir = Fixtures.NewTempDirectory("serve");
        var source = Path.Combine(Fixtures.NewTempDirectory("serve-src"), "alphabet.gguf");
        await File.WriteAllBytesAsync(source, Enumerable.Range(0, 4096).Select(i => (byte)i).ToArray());
        var registry = Bulwark.Server.Registry.ModelRegistry.Open(DataDirectory.Resolve(dataDir).EnsureCreated());
        await registry.AddAsync("alpha", source, new Bulwark.Server.Registry.AddOptions());
        await using var host = await ServeHost.StartAsync(Builder(dataDir, new() { ["Bulwark:Serve:Model"] = "alpha" }), TextWriter.Null, Alphabet);
        Assert.NotNull(host.Watcher);
        Assert.True((await host.Watcher!.CheckNowAsync()).Ok);

        var file = Directory.GetFiles(registry.FilesFolder("alpha", "v1")).Single();
        using (var stream = new FileStream(file, FileMode.Open, FileAccess.Write)) // in place: the size never changes
        {
            stream.Position = 100;
            stream.WriteByte(0xFF);
        }
        Assert.False((await host.Watcher.CheckNowAsync()).Ok);

        using var admin = new HttpClient { BaseAddress = host.Address };
        admin.DefaultRequestHeaders.Authorization = new("Bearer", host.InitialAdminKey!.Key);
        Assert.Contains("bulwark_model_tamper_alerts_total{model=\"alpha\"} 1", await admin.GetStringAsync("metrics"));
        var writer = host.App.Services.GetRequiredService<Bulwark.Server.Audit.AuditWriter>();
        await writer.FlushAsync();
        var events = await host.App.Services.GetRequiredService<Bulwark.Server.Storage.SecurityStorage>().Audit.ReadRecentAsync(20);
        Assert.Contains(events, e => e.Kind == "model.tampered" && e.Model == "alpha:v1" && e.Detail!.Contains("content changed"));
        Assert.Contains(events, e => e.Kind == "model.loaded" && e.Model == "alpha");
        // The copy loaded at start-up keeps serving; a new start from the tampered files is refused.
        Assert.Equal(200, (int)(await admin.GetAsync("health")).StatusCode);
        var refused = await Assert.ThrowsAsync<ServerConfigurationException>(() =>
            ServeHost.StartAsync(Builder(dataDir, new() { ["Bulwark:Serve:Model"] = "alpha" }), TextWriter.Null, Alphabet));
        Assert.Contains("failed verification", Assert.Single(refused.Problems));
    }

    [Fact]
    public async Task AHuggingFaceFolderServesTheSameTextAsItsGguf()
    {
        var spec = new Bulwark.Engine.Synthesis.SyntheticModelSpec
        {
            Layers = 2, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 128, Vocab = 512, Context = 256, Seed = 5,
            ChatTemplate = Bulwark.Engine.Synthesis.SyntheticModel.ChatMlTemplate,
        };
        var models = Fixtures.NewTempDirectory("serve-hf");
        var folder = Path.Combine(models, "synthetic-hf");
        var gguf = Path.Combine(models, "synthetic.gguf");
        Bulwark.Engine.Synthesis.SyntheticModel.WriteSafetensors(spec, folder);
        Bulwark.Engine.Synthesis.SyntheticModel.WriteGguf(spec, gguf);

        async Task<string> Complete(string model)
        {
            await using var host = await ServeHost.StartAsync(Builder(Fixtures.NewTempDirectory("serve"), new() { ["Bulwark:Serve:Model"] = model }), TextWriter.Null);
            var key = (await host.App.Services.GetRequiredService<Bulwark.Server.Security.KeyIssuer>().CreateAsync(new Bulwark.Server.Security.KeySpec { Name = "t" }, "tests")).Key;
            using var http = new HttpClient { BaseAddress = host.Address };
            http.DefaultRequestHeaders.Authorization = new("Bearer", key);
            var body = $$"""{"model":"{{host.Model!.Id}}","messages":[{"role":"user","content":"Hello there"}],"max_tokens":12,"temperature":0}""";
            using var response = await http.PostAsync("v1/chat/completions", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, text);
            using var json = System.Text.Json.JsonDocument.Parse(text);
            return json.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
        }

        var fromFolder = await Complete(folder);
        Assert.NotEmpty(fromFolder);
        Assert.Equal(await Complete(gguf), fromFolder);
    }

    [Fact]
    public async Task UnknownModelNameSaysWhatWasTriedAndHowToRegisterOne()
    {
        var e = await Assert.ThrowsAsync<ServerConfigurationException>(() => ServeHost.StartAsync(
            Builder(Fixtures.NewTempDirectory("serve"), new() { ["Bulwark:Serve:Model"] = "no-such-model" }), TextWriter.Null, Alphabet));
        var problem = Assert.Single(e.Problems);
        Assert.Contains("'no-such-model' is neither an existing file or folder nor a registered model (registered: none)", problem);
        Assert.Contains("bulwark models add", problem);
    }

    [Fact]
    public async Task WithRequireSignatureAPlainPathAndTheDemoModelAreRefused()
    {
        var dataDir = Fixtures.NewTempDirectory("serve");
        var model = Path.Combine(dataDir, "alphabet.gguf");
        await File.WriteAllTextAsync(model, "stand-in: the test's loader never reads it");
        var path = await Assert.ThrowsAsync<ServerConfigurationException>(() => ServeHost.StartAsync(
            Builder(dataDir, new() { ["Bulwark:Serve:Model"] = model, ["Bulwark:Serve:RequireSignature"] = "true" }), TextWriter.Null, Alphabet));
        Assert.Contains("is a path, and RequireSignature is set", Assert.Single(path.Problems));
        Assert.Contains("bulwark models add NAME --from " + model + " --sign", path.Problems[0]);
        var demo = await Assert.ThrowsAsync<ServerConfigurationException>(() => ServeHost.StartAsync(
            Builder(dataDir, new() { ["Bulwark:Serve:RequireSignature"] = "true" }), TextWriter.Null, Alphabet));
        Assert.Contains("the built-in demo model is not signed", Assert.Single(demo.Problems));
        // Without the requirement the same path serves, reported as unverified.
        await using var host = await ServeHost.StartAsync(Builder(dataDir, new() { ["Bulwark:Serve:Model"] = model }), TextWriter.Null, Alphabet);
        Assert.Contains("not verified", host.Model!.Origin);
    }

    [Fact]
    public async Task ARegisteredNameWinsOverAPathOfTheSameNameAndDotSlashMeansThePath()
    {
        var dataDir = Fixtures.NewTempDirectory("serve");
        var source = Path.Combine(Fixtures.NewTempDirectory("serve-src"), "alphabet.gguf");
        await File.WriteAllBytesAsync(source, Enumerable.Range(0, 4096).Select(i => (byte)i).ToArray());
        var data = DataDirectory.Resolve(dataDir).EnsureCreated();
        // A bare name is looked up in the working directory, which the test cannot change (tests run in
        // parallel): a uniquely named file planted there, removed afterwards.
        var name = "alpha-" + Guid.NewGuid().ToString("N")[..8];
        await Bulwark.Server.Registry.ModelRegistry.Open(data).AddAsync(name, source, new Bulwark.Server.Registry.AddOptions());
        var planted = Path.GetFullPath(name);
        await File.WriteAllTextAsync(planted, "a planted file named like the registered model");
        try
        {
            var registered = await ModelSource.ResolveAsync(name, data, requireSignature: false);
            Assert.Equal((name, "v1"), registered.RegisteredAs);
            Assert.StartsWith($"registered model {name} version v1, verified", registered.Origin);
            Assert.Contains($"give ./{name} to serve the path", registered.Notice);
            var path = await ModelSource.ResolveAsync("./" + name, data, requireSignature: false);
            Assert.Null(path.RegisteredAs);
            Assert.Equal(planted, path.Path);
        }
        finally
        {
            File.Delete(planted);
        }
    }

    [Theory]
    [InlineData("1048576", 1L << 20)]
    [InlineData("1MiB", 1L << 20)]
    [InlineData("512MiB", 512L << 20)]
    [InlineData("1.5GiB", 3L << 29)]
    [InlineData("300MB", 300_000_000L)]
    [InlineData("1TiB", 1L << 40)]
    public void KvCacheMemoryAcceptsSizesWithUnits(string text, long bytes)
    {
        Assert.Equal(bytes, ServeOptions.ParseBytes(text));
        Assert.Empty(new ServeOptions { KvCacheMemory = text }.Validate());
    }

    [Theory]
    [InlineData("1048575")] // one byte below 1 MiB
    [InlineData("1025GiB")] // above 1 TiB
    [InlineData("12 parsecs")]
    [InlineData("-5MiB")]
    [InlineData("")]
    public void KvCacheMemoryOutsideItsRangeOrMalformedIsRefused(string text) =>
        Assert.Contains(new ServeOptions { KvCacheMemory = text }.Validate(), p => p.Contains("KvCacheMemory"));

    [Fact]
    public void MaxBatchedTokensAndSequencesAreCheckedAtTheirLimits()
    {
        Assert.Empty(new ServeOptions { MaxBatchedTokens = 1, MaxSequences = 1 }.Validate());
        Assert.Empty(new ServeOptions { MaxBatchedTokens = 1_048_576, MaxSequences = 4096 }.Validate());
        Assert.Equal(2, new ServeOptions { MaxBatchedTokens = 1_048_577, MaxSequences = 4097 }.Validate().Count());
    }

    [Theory]
    [InlineData("f32", Bulwark.Engine.KvCache.KvCacheType.F32)]
    [InlineData("f16", Bulwark.Engine.KvCache.KvCacheType.F16)]
    [InlineData(" F16 ", Bulwark.Engine.KvCache.KvCacheType.F16)]
    public void KvCacheDtypeReachesTheEngine(string text, Bulwark.Engine.KvCache.KvCacheType type)
    {
        var options = new ServeOptions { KvCacheDtype = text };
        Assert.Empty(options.Validate());
        Assert.Equal(type, options.ToEngineOptions([]).KvCacheType);
    }

    [Theory]
    [InlineData("bf16")]
    [InlineData("q8_0")]
    [InlineData("")]
    public void AnotherKvCacheDtypeIsRefused(string text) =>
        Assert.Contains(new ServeOptions { KvCacheDtype = text }.Validate(), p => p.Contains("KvCacheDtype must be f32 or f16"));

    [Fact]
    public void TheKvCacheDtypeDefaultsToF32() =>
        Assert.Equal(Bulwark.Engine.KvCache.KvCacheType.F32, new ServeOptions().ToEngineOptions([]).KvCacheType);

    [Fact]
    public void TheSpeculativeDefaultIsOffAndNgramSettingsReachTheEngine()
    {
        Assert.Null(new ServeOptions().ToEngineOptions([]).Speculative);
        var options = new ServeOptions { Speculative = new SpeculativeOptions { Method = "ngram", NumSpeculativeTokens = 6, PromptLookupMax = 4, PromptLookupMin = 2 } };
        Assert.Empty(options.Validate());
        var config = options.ToEngineOptions([]).Speculative!;
        Assert.Equal((Bulwark.Engine.Serving.Speculation.SpeculativeMethod.Ngram, 6, 4, 2),
            (config.Method, config.NumSpeculativeTokens, config.PromptLookupMax, config.PromptLookupMin));
    }

    [Theory]
    [InlineData("eagle", 4, 3, 1, "Bulwark:Serve:Speculative:Method must be none, ngram or draft_model; got 'eagle'.")]
    [InlineData("ngram", 0, 3, 1, "Bulwark:Serve:Speculative:NumSpeculativeTokens must be between 1 and 16; got 0.")]
    [InlineData("ngram", 17, 3, 1, "Bulwark:Serve:Speculative:NumSpeculativeTokens must be between 1 and 16; got 17.")]
    [InlineData("ngram", 16, 9, 1, "Bulwark:Serve:Speculative:PromptLookupMax must be between 1 and 8; got 9.")]
    [InlineData("ngram", 16, 0, 1, "Bulwark:Serve:Speculative:PromptLookupMax must be between 1 and 8; got 0.")]
    [InlineData("ngram", 16, 3, 4, "Bulwark:Serve:Speculative:PromptLookupMin must be between 1 and PromptLookupMax (3); got 4.")]
    [InlineData("ngram", 16, 3, 0, "Bulwark:Serve:Speculative:PromptLookupMin must be between 1 and PromptLookupMax (3); got 0.")]
    [InlineData("ngram", 16, 8, 8, null)]
    [InlineData("ngram", 1, 1, 1, null)]
    public void SpeculativeSettingsAreCheckedAtStartUp(string method, int k, int max, int min, string? problem)
    {
        var problems = new ServeOptions { Speculative = new SpeculativeOptions { Method = method, NumSpeculativeTokens = k, PromptLookupMax = max, PromptLookupMin = min } }.Validate().ToList();
        if (problem is null) Assert.Empty(problems);
        else Assert.Equal(problem, problems[0]);
    }
}
