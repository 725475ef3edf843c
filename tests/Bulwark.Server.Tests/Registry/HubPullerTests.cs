using System.Text;
using Bulwark.Server.Registry;

namespace Bulwark.Server.Tests.Registry;

public class HubPullerTests
{
    private static Dictionary<string, byte[]> SafetensorsRepo(int seed = 7)
    {
        var rng = new Random(seed);
        var weights = new byte[300_000];
        rng.NextBytes(weights);
        return new()
        {
            ["config.json"] = Encoding.UTF8.GetBytes("""{"model_type":"qwen2"}"""),
            ["model.safetensors"] = weights,
            ["tokenizer.json"] = Encoding.UTF8.GetBytes("{}"),
            ["README.md"] = Encoding.UTF8.GetBytes("# not imported"),
            ["pytorch_model.bin"] = [1, 2, 3],
        };
    }

    [Fact]
    public async Task PullPinsTheCommitAndImportsOnlySafeFiles()
    {
        var bed = new RegistryTestBed(nameof(PullPinsTheCommitAndImportsOnlySafeFiles));
        await using var hub = new HubEmulator();
        var repo = SafetensorsRepo();
        hub.AddRepo("org/tiny", repo);
        using var http = new HttpClient();
        var m = await new HubPuller(http, hub.Endpoint, null, bed.Registry).PullAsync("org/tiny", "main", null);
        Assert.Equal("tiny", m.Name);
        Assert.Equal(HubEmulator.Commit, m.Source.Revision);
        Assert.Equal("hub", m.Source.Kind);
        Assert.Equal("qwen2", m.Architecture);
        Assert.Equal(["config.json", "model.safetensors", "tokenizer.json"], m.Files.Select(f => f.Path).Order(StringComparer.Ordinal));
        Assert.Equal(repo["model.safetensors"], File.ReadAllBytes(Path.Combine(bed.Registry.FilesFolder("tiny", "v1"), "model.safetensors")));
        Assert.True((await bed.Registry.VerifyAsync("tiny", "v1", false)).Ok);
        Assert.DoesNotContain(hub.Requests, r => r.Contains(".bin", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TamperedFileIsRefusedAndNothingIsImported()
    {
        var bed = new RegistryTestBed(nameof(TamperedFileIsRefusedAndNothingIsImported));
        await using var hub = new HubEmulator();
        var repo = SafetensorsRepo();
        hub.AddRepo("org/tiny", repo);
        var evil = (byte[])repo["model.safetensors"].Clone();
        evil[1234] ^= 0xff;
        hub.Tampered["model.safetensors"] = evil;
        using var http = new HttpClient();
        var e = await Assert.ThrowsAsync<RegistryException>(() => new HubPuller(http, hub.Endpoint, null, bed.Registry).PullAsync("org/tiny", "main", null));
        Assert.Contains("does not match the hub's published hash", e.Message);
        Assert.Empty(bed.Registry.Names());
    }

    [Fact]
    public async Task TamperedSmallFileIsCaughtByItsGitBlobId()
    {
        var bed = new RegistryTestBed(nameof(TamperedSmallFileIsCaughtByItsGitBlobId));
        await using var hub = new HubEmulator();
        hub.AddRepo("org/tiny", SafetensorsRepo());
        hub.Tampered["config.json"] = Encoding.UTF8.GetBytes("""{"model_type":"evil0"}""");
        using var http = new HttpClient();
        var e = await Assert.ThrowsAsync<RegistryException>(() => new HubPuller(http, hub.Endpoint, null, bed.Registry).PullAsync("org/tiny", "main", null));
        Assert.Contains("config.json", e.Message);
    }

    [Fact]
    public async Task TruncatedTransferResumesFromWhereItStopped()
    {
        var bed = new RegistryTestBed(nameof(TruncatedTransferResumesFromWhereItStopped));
        await using var hub = new HubEmulator();
        hub.AddRepo("org/tiny", SafetensorsRepo());
        hub.TruncateOnce["model.safetensors"] = true;
        using var http = new HttpClient();
        var m = await new HubPuller(http, hub.Endpoint, null, bed.Registry).PullAsync("org/tiny", HubEmulator.Commit, "resumed");
        Assert.True((await bed.Registry.VerifyAsync("resumed", m.Version, false)).Ok);
        // The emulator sends half the file then aborts; how much of that half reaches the client
        // before the reset varies, so the resume must start somewhere after 0 and at most there.
        var resumedAt = hub.Requests.Where(r => r.StartsWith("model.safetensors bytes=", StringComparison.Ordinal))
            .Select(r => long.Parse(r["model.safetensors bytes=".Length..].TrimEnd('-'))).ToList();
        Assert.Single(resumedAt);
        Assert.InRange(resumedAt[0], 1, 150_000);
    }

    [Fact]
    public async Task PickleOnlyRepositoryIsRefused()
    {
        var bed = new RegistryTestBed(nameof(PickleOnlyRepositoryIsRefused));
        await using var hub = new HubEmulator();
        hub.AddRepo("org/old", new() { ["config.json"] = "{}"u8.ToArray(), ["pytorch_model.bin"] = [1, 2, 3, 4] });
        using var http = new HttpClient();
        var e = await Assert.ThrowsAsync<RegistryException>(() => new HubPuller(http, hub.Endpoint, null, bed.Registry).PullAsync("org/old", "main", null));
        Assert.Contains("only pickle", e.Message);
        Assert.Empty(bed.Registry.Names());
    }

    [Fact]
    public async Task TokenIsSentToThePrivateHubAndUnknownRevisionIsClear()
    {
        var bed = new RegistryTestBed(nameof(TokenIsSentToThePrivateHubAndUnknownRevisionIsClear));
        await using var hub = new HubEmulator { RequiredToken = "hf_test_token_value" };
        hub.AddRepo("org/tiny", SafetensorsRepo());
        using var http = new HttpClient();
        var denied = await Assert.ThrowsAsync<RegistryException>(() => new HubPuller(http, hub.Endpoint, null, bed.Registry).PullAsync("org/tiny", "main", null));
        Assert.DoesNotContain("hf_test_token_value", denied.Message);
        var puller = new HubPuller(http, hub.Endpoint, "hf_test_token_value", bed.Registry);
        Assert.Contains("has no", (await Assert.ThrowsAsync<RegistryException>(() => puller.PullAsync("org/tiny", "nope", null))).Message);
        var m = await puller.PullAsync("org/tiny", "main", null);
        Assert.Equal(HubEmulator.Commit, m.Source.Revision);
        Assert.DoesNotContain("hf_test_token_value", Encoding.UTF8.GetString(m.ToJsonBytes()));
    }

    [Theory]
    [InlineData("noslash", "main")]
    [InlineData("a/b/c", "main")]
    [InlineData("../x", "main")]
    [InlineData("org/tiny", "")]
    public async Task BadRepositoryOrRevisionIsRefusedBeforeAnyRequest(string repo, string revision)
    {
        var bed = new RegistryTestBed(nameof(BadRepositoryOrRevisionIsRefusedBeforeAnyRequest));
        await using var hub = new HubEmulator();
        using var http = new HttpClient();
        await Assert.ThrowsAsync<RegistryException>(() => new HubPuller(http, hub.Endpoint, null, bed.Registry).PullAsync(repo, revision, null));
        Assert.Empty(hub.Requests);
    }
}
