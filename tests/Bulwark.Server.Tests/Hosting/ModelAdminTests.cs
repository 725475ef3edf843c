using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text;
using Bulwark.Server.Audit;
using Bulwark.Server.Hosting;
using Bulwark.Server.Models;
using Bulwark.Server.Registry;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Security;
using Bulwark.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>
/// The models admin API on a running <c>bulwark serve</c>: loads, switches, rolls back and unloads
/// registered models while requests run. The loader stands in for the engine with a
/// <see cref="ScriptedBackend"/> that answers "name vN." so each reply says which version served it.
/// </summary>
[Collection("BULWARK_ADMIN_KEY")] // the CLI test sets the environment variable
public sealed class ModelAdminTests
{
    private const int FileBytes = 4096;
    private const long KvBytes = 1L << 20;

    private sealed class Bed : IAsyncDisposable
    {
        public required ServeHost Host { get; init; }
        public required ModelRegistry Registry { get; init; }
        public required HttpClient Admin { get; init; }
        public required HttpClient Api { get; init; }
        public required string AdminKeyId { get; init; }
        public required ConcurrentDictionary<string, ScriptedBackend> Loaded { get; init; }
        public required string DataDir { get; init; }

        public ScriptedBackend Backend(string name, string version) => Loaded[name + ":" + version];

        public async Task<(HttpStatusCode Status, JsonElement Body)> AdminAsync(string path, string? body = null)
        {
            using var response = await Admin.PostAsync(path, body is null ? null : new StringContent(body, Encoding.UTF8, "application/json"));
            return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone());
        }

        public async Task<(HttpStatusCode Status, string Text)> CompleteAsync(string model, int maxTokens = 8)
        {
            var body = $$"""{"model":"{{model}}","prompt":"hi","max_tokens":{{maxTokens}},"temperature":0}""";
            using var response = await Api.PostAsync("v1/completions", new StringContent(body, Encoding.UTF8, "application/json"));
            var text = await response.Content.ReadAsStringAsync();
            if (response.StatusCode != HttpStatusCode.OK) return (response.StatusCode, text);
            return (response.StatusCode, JsonDocument.Parse(text).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!);
        }

        public async Task<IReadOnlyList<AuditRecord>> AuditAsync()
        {
            await Host.App.Services.GetRequiredService<AuditWriter>().FlushAsync();
            return await Host.App.Services.GetRequiredService<SecurityStorage>().Audit.ReadRecentAsync(200);
        }

        public async ValueTask DisposeAsync()
        {
            Admin.Dispose();
            Api.Dispose();
            await Host.DisposeAsync();
        }
    }

    /// <summary>Registers alpha (v1 serving, v2 added), beta and gamma (v1 each), and serves alpha.</summary>
    private static async Task<Bed> StartAsync(Dictionary<string, string?>? settings = null)
    {
        var dataDir = Fixtures.NewTempDirectory("model-admin");
        var registry = ModelRegistry.Open(DataDirectory.Resolve(dataDir).EnsureCreated());
        await RegisterAsync(registry);
        return await HostAsync(dataDir, registry, settings);
    }

    /// <summary>A second replica of <paramref name="first"/>: the same data directory (registry, SQLite store), its own process state.</summary>
    private static Task<Bed> StartReplicaAsync(Bed first, Dictionary<string, string?>? settings = null) => HostAsync(first.DataDir, first.Registry, settings);

    /// <summary>Registers alpha (v1, v2), beta and gamma (v1 each) from random files (also the console tests' models).</summary>
    internal static async Task RegisterAsync(ModelRegistry registry)
    {
        var sources = Fixtures.NewTempDirectory("model-admin-src");
        var seed = 0;
        async Task Add(string name)
        {
            var file = Path.Combine(sources, $"{name}-{++seed}.gguf");
            var bytes = new byte[FileBytes];
            new Random(seed).NextBytes(bytes);
            await File.WriteAllBytesAsync(file, bytes);
            await registry.AddAsync(name, file, new AddOptions());
        }
        await Add("alpha");
        await Add("alpha");
        await Add("beta");
        await Add("gamma");
    }

    /// <summary>The builder of a serve on a free port of 127.0.0.1 over <paramref name="dataDir"/>, serving alpha, with <paramref name="settings"/> on top.</summary>
    internal static Microsoft.AspNetCore.Builder.WebApplicationBuilder Builder(string dataDir, Dictionary<string, string?>? settings)
    {
        var all = new Dictionary<string, string?>
        {
            ["Bulwark:Server:Port"] = "0",
            [ServerSettings.DataDirKey] = dataDir,
            ["Bulwark:Serve:Model"] = "alpha",
            ["Bulwark:Serve:KvCacheMemory"] = "1MiB",
        };
        foreach (var (k, v) in settings ?? []) all[k] = v;
        var builder = BulwarkServer.CreateBuilder([], all);
        builder.Logging.ClearProviders();
        return builder;
    }

    private static async Task<Bed> HostAsync(string dataDir, ModelRegistry registry, Dictionary<string, string?>? settings)
    {
        var builder = Builder(dataDir, settings);
        var loaded = new ConcurrentDictionary<string, ScriptedBackend>();
        var host = await ServeHost.StartAsync(builder, TextWriter.Null, (source, _) =>
        {
            var (name, version) = source.RegisteredAs!.Value;
            var backend = new ScriptedBackend(id: source.Id) { Reply = $"{name} {version}. " };
            loaded[name + ":" + version] = backend;
            return backend;
        });
        // Only the first start of a data directory prints an admin key; a replica started later makes its own.
        var adminKey = host.InitialAdminKey ?? await host.App.Services.GetRequiredService<KeyIssuer>().CreateAsync(new KeySpec { Name = "ops", IsAdmin = true }, "tests");
        var admin = new HttpClient { BaseAddress = host.Address };
        admin.DefaultRequestHeaders.Authorization = new("Bearer", adminKey.Key);
        var apiKey = (await host.App.Services.GetRequiredService<KeyIssuer>().CreateAsync(new KeySpec { Name = "api" }, "tests")).Key;
        var api = new HttpClient { BaseAddress = host.Address };
        api.DefaultRequestHeaders.Authorization = new("Bearer", apiKey);
        return new Bed { Host = host, Registry = registry, Admin = admin, Api = api, AdminKeyId = adminKey.Record.Id, Loaded = loaded, DataDir = dataDir };
    }

    [Fact]
    public async Task UseAndRollbackOnOneReplicaAreFollowedByAnotherWithinASecond()
    {
        await using var a = await StartAsync();
        await using var b = await StartReplicaAsync(a);
        Assert.Equal((HttpStatusCode.OK, "alpha v1"), await b.CompleteAsync("alpha"));

        Assert.Equal(HttpStatusCode.OK, (await a.AdminAsync("admin/models/alpha/use", """{"version":"v2"}""")).Status);
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(1), async () => await b.CompleteAsync("alpha") == (HttpStatusCode.OK, "alpha v2")),
            "replica B still served alpha v1 a second after replica A switched to v2");
        Assert.Equal(HttpStatusCode.OK, (await a.AdminAsync("admin/models/alpha/rollback")).Status);
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(1), async () => await b.CompleteAsync("alpha") == (HttpStatusCode.OK, "alpha v1")),
            "replica B still served alpha v2 a second after replica A rolled back to v1");
        Assert.Equal((HttpStatusCode.OK, "alpha v1"), await a.CompleteAsync("alpha"));

        // B's switches are audited as following A; A's own announcement is not followed by A again.
        var audit = await b.AuditAsync();
        Assert.Equal(2, audit.Count(r => r.Kind == "model.current" && r.KeyId is null && r.Detail!.Contains("following replica")));
        Assert.Single(audit, r => r.Kind == "model.rollback");
        Assert.Equal(0, b.Host.App.Services.GetRequiredService<ModelServingFollower>().Pending);
        Assert.Equal(0, a.Host.App.Services.GetRequiredService<ModelServingFollower>().Pending);
    }

    [Fact]
    public async Task AReplicaThatCannotLoadTheVersionKeepsServingWhatItHasAndAuditsWhy()
    {
        await using var a = await StartAsync();
        // B's memory budget holds one copy of alpha: a switch, which loads the new version beside the old, is over it there.
        await using var b = await StartReplicaAsync(a, new() { ["Bulwark:Serve:ModelMemoryBudget"] = $"{FileBytes + KvBytes + 1000}" });
        Assert.Equal(HttpStatusCode.OK, (await a.AdminAsync("admin/models/alpha/use", """{"version":"v2"}""")).Status);
        Assert.Equal((HttpStatusCode.OK, "alpha v2"), await a.CompleteAsync("alpha"));
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(5), async () =>
            (await b.AuditAsync()).Any(r => r.Kind == "model.follow_failed" && r.Model == "alpha:v2" && r.Detail!.Contains("budget"))),
            "replica B did not audit the switch it could not follow");
        Assert.Equal((HttpStatusCode.OK, "alpha v1"), await b.CompleteAsync("alpha"));
        Assert.Equal(0, b.Host.App.Services.GetRequiredService<ModelServingFollower>().Pending);
    }

    [Fact]
    public async Task UseRollbackLoadAndUnloadChangeWhatServesAndAreAuditedWithTheAdminKey()
    {
        await using var bed = await StartAsync();
        Assert.Equal((HttpStatusCode.OK, "alpha v1"), await bed.CompleteAsync("alpha"));

        var (status, body) = await bed.AdminAsync("admin/models/alpha/use", """{"version":"v2"}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("v2", body.GetProperty("serving").GetProperty("version").GetString());
        Assert.Equal("v1", body.GetProperty("replaced").GetProperty("version").GetString());
        Assert.Equal((HttpStatusCode.OK, "alpha v2"), await bed.CompleteAsync("alpha"));
        Assert.Equal("v2", bed.Registry.State("alpha").Current);
        // Nothing held v1: it was disposed at once.
        Assert.True(bed.Backend("alpha", "v1").Disposed);

        (status, body) = await bed.AdminAsync("admin/models/alpha/rollback");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("v1", body.GetProperty("serving").GetProperty("version").GetString());
        Assert.Equal((HttpStatusCode.OK, "alpha v1"), await bed.CompleteAsync("alpha"));
        Assert.Equal("v1", bed.Registry.State("alpha").Current);
        Assert.Empty(bed.Registry.State("alpha").History);

        Assert.Equal(HttpStatusCode.Created, (await bed.AdminAsync("admin/models/beta/load", "{}")).Status);
        Assert.Equal((HttpStatusCode.OK, "beta v1"), await bed.CompleteAsync("beta", 7));
        var models = JsonDocument.Parse(await bed.Api.GetStringAsync("v1/models")).RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Equal(["alpha", "beta"], models);
        var list = JsonDocument.Parse(await bed.Admin.GetStringAsync("admin/models")).RootElement;
        Assert.Equal(["alpha", "beta", "gamma"], list.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("name").GetString()).ToList());
        Assert.Equal(["v1", "v2"], list.GetProperty("data")[0].GetProperty("versions").EnumerateArray().Select(v => v.GetProperty("version").GetString()).ToList());
        Assert.Equal(["alpha", "beta"], list.GetProperty("loaded").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList());
        Assert.True(list.GetProperty("loaded")[0].GetProperty("default").GetBoolean());

        (status, body) = await bed.AdminAsync("admin/models/beta/unload");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(bed.Backend("beta", "v1").Disposed);
        var (missing, error) = await bed.CompleteAsync("beta");
        Assert.Equal(HttpStatusCode.NotFound, missing);
        Assert.Equal("model_not_found", JsonDocument.Parse(error).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.DoesNotContain("\"beta\"", await bed.Api.GetStringAsync("v1/models"));
        Assert.Equal(HttpStatusCode.NotFound, (await bed.Api.GetAsync("v1/models/beta")).StatusCode);

        var audit = await bed.AuditAsync();
        foreach (var (kind, model) in new[] { ("model.current", "alpha:v2"), ("model.rollback", "alpha:v1"), ("model.loaded", "beta:v1"), ("model.unloaded", "beta:v1") })
            Assert.Contains(audit, a => a.Kind == kind && a.Model == model && a.KeyId == bed.AdminKeyId);
        Assert.Contains(audit, a => a.Kind == "model.current" && a.Detail!.StartsWith("v1 -> v2", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AStreamRunningDuringASwapFinishesOnTheOldVersionWhichIsDisposedAfterIt()
    {
        await using var bed = await StartAsync();
        var old = bed.Backend("alpha", "v1");
        var release = new TaskCompletionSource();
        var started = new TaskCompletionSource();
        old.BeforeEachToken = async ct =>
        {
            started.TrySetResult();
            await release.Task.WaitAsync(ct);
        };
        var body = """{"model":"alpha","prompt":"hi","max_tokens":8,"temperature":0,"stream":true}""";
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        var streaming = bed.Api.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var (status, swap) = await bed.AdminAsync("admin/models/alpha/use", """{"version":"v2"}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(1, swap.GetProperty("replaced").GetProperty("in_flight").GetInt32());
        // New requests go to v2 at once, while v1 still holds the stream.
        Assert.Equal((HttpStatusCode.OK, "alpha v2"), await bed.CompleteAsync("alpha"));
        Assert.False(old.Disposed);
        var retiring = JsonDocument.Parse(await bed.Admin.GetStringAsync("admin/models")).RootElement.GetProperty("retiring");
        Assert.Equal("v1", Assert.Single(retiring.EnumerateArray()).GetProperty("version").GetString());

        release.SetResult();
        using var response = await streaming;
        var events = await response.Content.ReadAsStringAsync();
        var text = string.Concat(events.Split('\n').Where(l => l.StartsWith("data: {", StringComparison.Ordinal))
            .Select(l => JsonDocument.Parse(l["data: ".Length..]).RootElement)
            .Where(e => e.TryGetProperty("choices", out var c) && c.GetArrayLength() > 0)
            .Select(e => e.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal("alpha v1", text);
        Assert.DoesNotContain("\"error\"", events);
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(5), () => Task.FromResult(old.Disposed)));
        Assert.False(bed.Backend("alpha", "v2").Disposed);
    }

    [Fact]
    public async Task ATamperedVersionIsRefusedAuditedAndLeavesTheServingVersionAndTheRegistryAsTheyWere()
    {
        await using var bed = await StartAsync();
        var file = Directory.GetFiles(bed.Registry.FilesFolder("alpha", "v2")).Single();
        using (var stream = new FileStream(file, FileMode.Open, FileAccess.Write))
        {
            stream.Position = 10;
            stream.WriteByte(0xEE);
        }
        var (status, body) = await bed.AdminAsync("admin/models/alpha/use", """{"version":"v2"}""");
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("model_verification_failed", body.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("failed verification", body.GetProperty("error").GetProperty("message").GetString());
        Assert.False(bed.Loaded.ContainsKey("alpha:v2"));
        Assert.Equal((HttpStatusCode.OK, "alpha v1"), await bed.CompleteAsync("alpha"));
        Assert.Equal("v1", bed.Registry.State("alpha").Current);
        var audit = await bed.AuditAsync();
        Assert.Contains(audit, a => a.Kind == "model.tampered" && a.Model == "alpha:v2" && a.KeyId == bed.AdminKeyId && a.Detail!.Contains("content changed"));
    }

    [Fact]
    public async Task AQuantizedVersionNeverCheckedIsHeldBackByTheGate()
    {
        await using var bed = await StartAsync();
        var file = Path.Combine(Fixtures.NewTempDirectory("model-admin-q"), "alpha-q8.gguf");
        await File.WriteAllBytesAsync(file, new byte[FileBytes]);
        await bed.Registry.AddAsync("alpha", file, new AddOptions { Quantization = "q8_0", Parent = "v1" });

        var (status, body) = await bed.AdminAsync("admin/models/alpha/use", """{"version":"v3"}""");
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("quantization_gate", body.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("never checked", body.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal((HttpStatusCode.OK, "alpha v1"), await bed.CompleteAsync("alpha"));
        Assert.Contains(await bed.AuditAsync(), a => a.Kind == "model.load_refused" && a.Model == "alpha:v3");

        new QuantizationGate(bed.Registry, TimeProvider.System).Override("alpha", "v3", "accepted for the test");
        Assert.Equal(HttpStatusCode.OK, (await bed.AdminAsync("admin/models/alpha/use", """{"version":"v3"}""")).Status);
        Assert.Equal((HttpStatusCode.OK, "alpha v3"), await bed.CompleteAsync("alpha"));
    }

    // Each model needs its file (4096 bytes) plus its KV cache (1 MiB); alpha is loaded at start.
    [Theory]
    [InlineData(2 * (FileBytes + KvBytes) - 1, false)]
    [InlineData(2 * (FileBytes + KvBytes), true)]
    [InlineData(2 * (FileBytes + KvBytes) + 1, true)]
    public async Task ALoadBeyondTheMemoryBudgetIsRefused(long budget, bool fits)
    {
        await using var bed = await StartAsync(new() { ["Bulwark:Serve:ModelMemoryBudget"] = budget.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        var (status, body) = await bed.AdminAsync("admin/models/beta/load");
        if (fits)
        {
            Assert.Equal(HttpStatusCode.Created, status);
            // A third model never fits; nor does a second alpha version while v1 is still in memory.
            Assert.Equal(HttpStatusCode.Conflict, (await bed.AdminAsync("admin/models/gamma/load")).Status);
            (status, body) = await bed.AdminAsync("admin/models/alpha/use", """{"version":"v2"}""");
        }
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("memory_budget_exceeded", body.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("ModelMemoryBudget", body.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal((HttpStatusCode.OK, "alpha v1"), await bed.CompleteAsync("alpha"));
    }

    [Fact]
    public async Task UnusableRequestsGetClearErrors()
    {
        await using var bed = await StartAsync();
        async Task Expect(string path, string? body, HttpStatusCode status, string code, string text)
        {
            var (actual, answer) = await bed.AdminAsync(path, body);
            Assert.Equal(status, actual);
            var error = answer.GetProperty("error");
            Assert.Equal(code, error.GetProperty("code").GetString());
            Assert.Contains(text, error.GetProperty("message").GetString());
        }
        await Expect("admin/models/nope/load", null, HttpStatusCode.NotFound, "model_not_registered", "'nope' is not a registered model");
        await Expect("admin/models/alpha/load", null, HttpStatusCode.Conflict, "model_already_loaded", "already loaded (version v1)");
        await Expect("admin/models/beta/unload", null, HttpStatusCode.NotFound, "model_not_found", "'beta' is not loaded");
        await Expect("admin/models/alpha/use", "{}", HttpStatusCode.BadRequest, "missing_required_parameter", "version is required");
        await Expect("admin/models/alpha/use", """{"version":"v9"}""", HttpStatusCode.NotFound, "version_not_found", "v9");
        await Expect("admin/models/alpha/use", """{"version":"latest"}""", HttpStatusCode.BadRequest, "invalid_value", "version 'latest' is invalid");
        await Expect("admin/models/Bad..Name/load", null, HttpStatusCode.BadRequest, "invalid_value", "is invalid");
        await Expect("admin/models/beta/rollback", null, HttpStatusCode.Conflict, "no_previous_version", "no earlier serving version");
        await Expect("admin/models/alpha/use", "[1]", HttpStatusCode.BadRequest, "invalid_type", "body must be an object");
    }

    [Fact]
    public async Task EveryRouteOfTheFullServerRefusesMissingCredentialsAndKeysWithoutItsScope()
    {
        await using var bed = await StartAsync();
        var apiKey = bed.Api.DefaultRequestHeaders.Authorization!.Parameter!;
        var probes = RouteAuthenticationAudit.Enumerate(bed.Host.App.Services);
        Assert.Contains(probes, p => p.Path == "/admin/models/probe1/use" && p.Method == "POST");
        var results = await RouteAuthenticationAudit.RunAsync(bed.Host.Address, probes, apiKey, bed.Host.InitialAdminKey!.Key);
        foreach (var (probe, anonymous, wrongScope) in results)
        {
            if (probe.Path is "/health" or "/ready") continue;
            // The console's routes answer to a session, not a key (ConsoleSessionTests.EveryConsoleRouteButSignInAndAssetsRefusesWithoutASession).
            if (probe.SessionRoute) continue;
            Assert.True(anonymous == HttpStatusCode.Unauthorized, $"{probe.Method} {probe.Path} answered {anonymous} without credentials");
            Assert.True(wrongScope == HttpStatusCode.Forbidden, $"{probe.Method} {probe.Path} answered {wrongScope} to a key without '{probe.Scope}'");
        }
        // Nothing changed: the refused calls never reached the lifecycle.
        Assert.Equal("v1", bed.Registry.State("alpha").Current);
        Assert.Equal(["alpha"], bed.Host.Models.List().Select(m => m.Id));
    }

    [Fact]
    public async Task TheCliActsOnARunningServer()
    {
        await using var bed = await StartAsync();
        var url = bed.Host.Address.ToString();
        Environment.SetEnvironmentVariable("BULWARK_ADMIN_KEY", bed.Host.InitialAdminKey!.Key);
        try
        {
            var used = await Cli.CliHarness.RunAsync("models", "use", "alpha", "v2", "--url", url);
            Assert.True(used.ExitCode == 0, used.Error);
            Assert.Equal("alpha: serving v2 (replaced v1, 0 requests finishing on it)", used.Output.Trim());
            Assert.Equal((HttpStatusCode.OK, "alpha v2"), await bed.CompleteAsync("alpha"));

            var rolled = await Cli.CliHarness.RunAsync("models", "rollback", "alpha", "--url", url);
            Assert.True(rolled.ExitCode == 0, rolled.Error);
            Assert.StartsWith("alpha: serving v1", rolled.Output);

            Assert.Equal("loaded beta v1", (await Cli.CliHarness.RunAsync("models", "load", "beta", "--url", url)).Output.Trim());
            var listed = await Cli.CliHarness.RunAsync("models", "loaded", "--url", url);
            Assert.Matches(@"^\* alpha\s+v1\s+0 in flight", listed.Output);
            Assert.Contains("  beta ", listed.Output);
            Assert.StartsWith("unloaded beta", (await Cli.CliHarness.RunAsync("models", "unload", "beta", "--url", url)).Output);

            var refused = await Cli.CliHarness.RunAsync("models", "unload", "beta", "--url", url);
            Assert.Equal(1, refused.ExitCode);
            Assert.Contains("the server answered 404: The model 'beta' is not loaded.", refused.Error);
        }
        finally
        {
            Environment.SetEnvironmentVariable("BULWARK_ADMIN_KEY", null);
        }
        var missingKey = await Cli.CliHarness.RunAsync("models", "loaded", "--url", url);
        Assert.Equal(1, missingKey.ExitCode);
        Assert.Contains("set BULWARK_ADMIN_KEY", missingKey.Error);
    }

    [Fact]
    public async Task TheEmbeddedEngineLoadsAndSwapsRegisteredModelsThroughTheAdminApi()
    {
        var dataDir = Fixtures.NewTempDirectory("model-admin-real");
        var registry = ModelRegistry.Open(DataDirectory.Resolve(dataDir).EnsureCreated());
        var sources = Fixtures.NewTempDirectory("model-admin-real-src");
        var spec = new Bulwark.Engine.Synthesis.SyntheticModelSpec { Layers = 1, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 128, Vocab = 320, Context = 128, Seed = 1 };
        foreach (var seed in new[] { 1, 2 })
        {
            var file = Path.Combine(sources, $"syn-{seed}.gguf");
            Bulwark.Engine.Synthesis.SyntheticModel.WriteGguf(spec with { Seed = (ulong)seed }, file);
            await registry.AddAsync("syn", file, new AddOptions());
        }
        var builder = BulwarkServer.CreateBuilder([], new Dictionary<string, string?>
        {
            ["Bulwark:Server:Port"] = "0", [ServerSettings.DataDirKey] = dataDir, ["Bulwark:Serve:KvCacheMemory"] = "4MiB",
            ["Bulwark:Serve:Model"] = Path.Combine(sources, "syn-1.gguf"),
        });
        builder.Logging.ClearProviders();
        // A plain file serves as syn-1; the registered syn is loaded beside it, switched to v2 and unloaded.
        await using var host = await ServeHost.StartAsync(builder, TextWriter.Null);
        using var admin = new HttpClient { BaseAddress = host.Address };
        admin.DefaultRequestHeaders.Authorization = new("Bearer", host.InitialAdminKey!.Key);
        var apiKey = (await host.App.Services.GetRequiredService<KeyIssuer>().CreateAsync(new KeySpec { Name = "api" }, "tests")).Key;
        using var api = new HttpClient { BaseAddress = host.Address };
        api.DefaultRequestHeaders.Authorization = new("Bearer", apiKey);
        async Task<string> Logprobs()
        {
            var body = """{"model":"syn","prompt":[1,2,3],"max_tokens":6,"temperature":0,"logprobs":0}""";
            using var response = await api.PostAsync("v1/completions", new StringContent(body, Encoding.UTF8, "application/json"));
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, text);
            return JsonDocument.Parse(text).RootElement.GetProperty("choices")[0].GetProperty("logprobs").GetRawText();
        }

        using (var loaded = await admin.PostAsync("admin/models/syn/load", null))
            Assert.Equal(HttpStatusCode.Created, loaded.StatusCode);
        var v1 = await Logprobs();
        using (var used = await admin.PostAsync("admin/models/syn/use", new StringContent("""{"version":"v2"}""", Encoding.UTF8, "application/json")))
            Assert.Equal(HttpStatusCode.OK, used.StatusCode);
        // Other weights: other tokens or log-probabilities.
        Assert.NotEqual(v1, await Logprobs());
        var models = JsonDocument.Parse(await api.GetStringAsync("v1/models")).RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString());
        Assert.Equal(["syn-1", "syn"], models);
        using (var unloaded = await admin.PostAsync("admin/models/syn/unload", null))
            Assert.Equal(HttpStatusCode.OK, unloaded.StatusCode);
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(5), () => Task.FromResult(host.Models.Retiring().Count == 0)));
    }

    [Theory]
    [InlineData("", true)]
    [InlineData("1", true)]
    [InlineData("16GiB", true)]
    [InlineData("0", false)]
    [InlineData("-1MiB", false)]
    [InlineData("lots", false)]
    public void TheMemoryBudgetIsASizeOrEmpty(string budget, bool valid)
    {
        var problems = new ServeOptions { ModelMemoryBudget = budget }.Validate().ToList();
        if (valid) Assert.Empty(problems);
        else Assert.Equal($"Bulwark:Serve:ModelMemoryBudget must be a size such as 16GiB or 8000MB (or empty for no limit); got '{budget}'.", Assert.Single(problems));
    }

    [Fact]
    public async Task AStartUpModelBeyondTheBudgetIsRefusedBeforeItLoads()
    {
        // alpha's file is 4096 bytes and its KV cache 1 MiB: one byte less does not fit.
        var e = await Assert.ThrowsAsync<ServerConfigurationException>(() =>
            StartAsync(new() { ["Bulwark:Serve:ModelMemoryBudget"] = (FileBytes + KvBytes - 1).ToString(System.Globalization.CultureInfo.InvariantCulture) }));
        Assert.Contains("more than Bulwark:Serve:ModelMemoryBudget", Assert.Single(e.Problems));
    }
}
