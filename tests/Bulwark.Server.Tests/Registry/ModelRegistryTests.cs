using Bulwark.Server.Registry;

namespace Bulwark.Server.Tests.Registry;

public class ModelRegistryTests
{
    [Fact]
    public async Task AddedGgufVersionVerifiesAndResolvesToItsFile()
    {
        var bed = new RegistryTestBed(nameof(AddedGgufVersionVerifiesAndResolvesToItsFile));
        var src = bed.MakeFile("tiny.gguf", 100_000);
        var m = await bed.Registry.AddAsync("tiny", src, new AddOptions());
        Assert.Equal("v1", m.Version);
        Assert.Equal("gguf", m.Format);
        Assert.Equal(FileHasher.Sha256(File.ReadAllBytes(src)), m.Files.Single().Sha256);
        Assert.Equal("v1", bed.Registry.State("tiny").Current);
        var (_, path) = await bed.Registry.ResolveVerifiedAsync("tiny", null, requireSignature: false);
        Assert.Equal(File.ReadAllBytes(src), File.ReadAllBytes(path));
    }

    [Fact]
    public async Task HuggingFaceFolderKeepsItsLayoutAndArchitecture()
    {
        var bed = new RegistryTestBed(nameof(HuggingFaceFolderKeepsItsLayoutAndArchitecture));
        var m = await bed.Registry.AddAsync("hf", bed.MakeHfFolder(), new AddOptions());
        Assert.Equal("safetensors", m.Format);
        Assert.Equal("llama", m.Architecture);
        Assert.Equal(["config.json", "model-00001-of-00002.safetensors", "sub/model-00002-of-00002.safetensors", "tokenizer.json"],
            m.Files.Select(f => f.Path).Order(StringComparer.Ordinal));
        Assert.True((await bed.Registry.VerifyAsync("hf", "v1", false)).Ok);
    }

    [Theory]
    [InlineData("changed")]
    [InlineData("missing")]
    [InlineData("extra")]
    [InlineData("resized")]
    [InlineData("symlink")]
    public async Task TamperedVersionRefusesToLoadWithTheReason(string tamper)
    {
        var bed = new RegistryTestBed(nameof(TamperedVersionRefusesToLoadWithTheReason) + tamper);
        await bed.Registry.AddAsync("hf", bed.MakeHfFolder(), new AddOptions());
        var files = bed.Registry.FilesFolder("hf", "v1");
        var shard = Path.Combine(files, "model-00001-of-00002.safetensors");
        switch (tamper)
        {
            case "changed":
                var bytes = File.ReadAllBytes(shard);
                bytes[100] ^= 1;
                File.WriteAllBytes(shard, bytes);
                break;
            case "missing": File.Delete(shard); break;
            case "extra": File.WriteAllText(Path.Combine(files, "evil.py"), "print(1)"); break;
            case "resized": File.AppendAllText(shard, "x"); break;
            case "symlink":
                File.Delete(shard);
                File.CreateSymbolicLink(shard, bed.MakeFile("other.safetensors", 10));
                break;
        }
        var e = await Assert.ThrowsAsync<VerificationFailedException>(() => bed.Registry.ResolveVerifiedAsync("hf", "v1", false));
        var expected = tamper switch
        {
            "changed" => "content changed",
            "missing" => "missing file",
            "extra" => "extra file",
            "resized" => "size changed",
            _ => "symbolic link",
        };
        Assert.Contains(e.Problems, p => p.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public async Task SignedVersionVerifiesAndAnEditedManifestDoesNot()
    {
        var bed = new RegistryTestBed(nameof(SignedVersionVerifiesAndAnEditedManifestDoesNot));
        bed.Registry.Keys.Generate();
        var m = await bed.Registry.AddAsync("tiny", bed.MakeFile("t.gguf", 5000), new AddOptions { Sign = true });
        Assert.NotNull(m.Signature);
        Assert.True((await bed.Registry.VerifyAsync("tiny", "v1", requireSignature: true)).Ok);

        // An attacker who swaps a file and rewrites the manifest's hash cannot re-sign it.
        var manifestPath = Path.Combine(bed.Data.RegistryPath, "tiny", "versions", "v1", ModelManifest.FileName);
        var forged = m with { Quantization = "q4_0" };
        File.WriteAllBytes(manifestPath, forged.ToJsonBytes());
        var report = await bed.Registry.VerifyAsync("tiny", "v1", requireSignature: true);
        Assert.Contains(report.Problems, p => p.Contains("does not match the manifest", StringComparison.Ordinal));
    }

    [Fact]
    public async Task UnsignedVersionFailsOnlyWhenSignaturesAreRequired()
    {
        var bed = new RegistryTestBed(nameof(UnsignedVersionFailsOnlyWhenSignaturesAreRequired));
        await bed.Registry.AddAsync("tiny", bed.MakeFile("t.gguf", 5000), new AddOptions());
        Assert.True((await bed.Registry.VerifyAsync("tiny", "v1", requireSignature: false)).Ok);
        var report = await bed.Registry.VerifyAsync("tiny", "v1", requireSignature: true);
        Assert.Contains(report.Problems, p => p.Contains("not signed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task SignatureByAnUntrustedKeyIsRefused()
    {
        var bed = new RegistryTestBed(nameof(SignatureByAnUntrustedKeyIsRefused));
        var id = bed.Registry.Keys.Generate();
        await bed.Registry.AddAsync("tiny", bed.MakeFile("t.gguf", 5000), new AddOptions { Sign = true });
        File.Delete(Path.Combine(bed.Registry.Keys.TrustedFolder, id + ".pub"));
        var report = await bed.Registry.VerifyAsync("tiny", "v1", requireSignature: false);
        Assert.Contains(report.Problems, p => p.Contains("not trusted", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RollbackReturnsToThePreviousServingVersionInOneCall()
    {
        var bed = new RegistryTestBed(nameof(RollbackReturnsToThePreviousServingVersionInOneCall));
        await bed.Registry.AddAsync("m", bed.MakeFile("a.gguf", 100, 1), new AddOptions());
        await bed.Registry.AddAsync("m", bed.MakeFile("b.gguf", 100, 2), new AddOptions { MakeCurrent = true });
        await bed.Registry.AddAsync("m", bed.MakeFile("c.gguf", 100, 3), new AddOptions());
        Assert.Equal("v2", bed.Registry.State("m").Current);
        bed.Registry.SetCurrent("m", "v3");
        Assert.Equal("v2", bed.Registry.Rollback("m").Current);
        Assert.Equal("v1", bed.Registry.Rollback("m").Current);
        Assert.Contains("no earlier", Assert.Throws<RegistryException>(() => bed.Registry.Rollback("m")).Message);
        Assert.Equal(["v1", "v2", "v3"], bed.Registry.Versions("m").Select(v => v.Version));
    }

    [Theory]
    [InlineData("model.bin")]
    [InlineData("model.pt")]
    [InlineData("model.pth")]
    [InlineData("model.pkl")]
    [InlineData("model.ckpt")]
    public async Task PickleFilesAreRefusedWithTheWayToConvert(string fileName)
    {
        var bed = new RegistryTestBed(nameof(PickleFilesAreRefusedWithTheWayToConvert) + fileName);
        var e = await Assert.ThrowsAsync<RegistryException>(() => bed.Registry.AddAsync("m", bed.MakeFile(fileName, 10), new AddOptions()));
        Assert.Contains("pickle", e.Message);
        Assert.Contains("safetensors", e.Message);
        var folder = bed.MakeHfFolder();
        File.WriteAllBytes(Path.Combine(folder, fileName), [1, 2, 3]);
        await Assert.ThrowsAsync<RegistryException>(() => bed.Registry.AddAsync("m", folder, new AddOptions()));
        Assert.Empty(bed.Registry.Versions("m"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("UPPER")]
    [InlineData("../x")]
    [InlineData("a/b")]
    public async Task InvalidModelNamesAreRefused(string name)
    {
        var bed = new RegistryTestBed(nameof(InvalidModelNamesAreRefused));
        await Assert.ThrowsAsync<RegistryException>(() => bed.Registry.AddAsync(name, bed.MakeFile("a.gguf", 10), new AddOptions()));
    }
}
