using System.Text;
using Bulwark.Server.Registry;

namespace Bulwark.Server.Tests.Registry;

public class ModelManifestTests
{
    private static ModelManifest Sample(ManifestSignature? signature = null) => new(
        "tiny", "v3", new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero),
        new ManifestSource("hub", "http://127.0.0.1/org/tiny", new string('a', 40)),
        "safetensors", "llama", "q8_0", "v2",
        [new ManifestFile("b.safetensors", 10, new string('b', 64)), new ManifestFile("a/config.json", 2, new string('c', 64))],
        signature);

    [Fact]
    public void ManifestRoundTripsThroughItsJsonFile()
    {
        var m = Sample(new ManifestSignature("0123456789abcdef", "ed25519", "c2ln"));
        var back = ModelManifest.Parse(m.ToJsonBytes(), "test");
        Assert.Equal(m.CanonicalBytes(), back.CanonicalBytes());
        Assert.Equal(m.Signature, back.Signature);
        Assert.Equal("q8_0", back.Quantization);
        Assert.Equal(12, back.TotalBytes);
    }

    [Fact]
    public void CanonicalBytesIgnoreFileOrderAndSignature()
    {
        var a = Sample();
        var b = a with { Files = a.Files.Reverse().ToList(), Signature = new ManifestSignature("k", "ed25519", "x") };
        Assert.Equal(a.CanonicalBytes(), b.CanonicalBytes());
        var text = Encoding.UTF8.GetString(a.CanonicalBytes());
        Assert.DoesNotContain(" ", text.Replace("http://127.0.0.1/org/tiny", ""));
        Assert.True(text.IndexOf("a/config.json", StringComparison.Ordinal) < text.IndexOf("b.safetensors", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("../evil")]
    [InlineData("/etc/passwd")]
    [InlineData("a/../../b")]
    [InlineData("a//b")]
    [InlineData("c:\\\\x")]
    public void PathsThatEscapeTheVersionFolderAreRefused(string path)
    {
        var json = Encoding.UTF8.GetString(Sample().ToJsonBytes()).Replace("b.safetensors", path.Replace("\\", "\\\\"));
        var e = Assert.Throws<RegistryException>(() => ModelManifest.Parse(Encoding.UTF8.GetBytes(json), "m.json"));
        Assert.Contains("m.json", e.Message);
    }

    [Theory]
    [InlineData("\"sha256\": \"bbbb", "\"sha256\": \"BBBB")]
    [InlineData("\"size\": 10", "\"size\": -1")]
    [InlineData("\"schema\": 1", "\"schema\": 2")]
    [InlineData("\"name\": \"tiny\"", "\"name\": \"../x\"")]
    [InlineData("\"version\": \"v3\"", "\"version\": \"latest\"")]
    public void MalformedFieldsAreNamedInTheError(string from, string to)
    {
        var json = Encoding.UTF8.GetString(Sample().ToJsonBytes());
        Assert.Contains(from, json);
        Assert.Throws<RegistryException>(() => ModelManifest.Parse(Encoding.UTF8.GetBytes(json.Replace(from, to)), "m.json"));
    }

    [Fact]
    public void DuplicateFilesAndNonJsonAreRefused()
    {
        var dup = Sample() with { Files = [new ManifestFile("x", 1, new string('a', 64)), new ManifestFile("x", 1, new string('a', 64))] };
        Assert.Contains("twice", Assert.Throws<RegistryException>(() => ModelManifest.Parse(dup.ToJsonBytes(), "m")).Message);
        Assert.Contains("not valid JSON", Assert.Throws<RegistryException>(() => ModelManifest.Parse("{"u8, "m")).Message);
    }

    [Fact]
    public void ManifestFileLargerThanTheLimitIsRefusedBeforeParsing()
    {
        var path = Path.Combine(Bulwark.Testing.Fixtures.NewTempDirectory(), "manifest.json");
        using (var f = File.Create(path)) f.SetLength(ModelManifest.MaxManifestBytes + 1L);
        Assert.Contains("limit", Assert.Throws<RegistryException>(() => ModelManifest.Load(path)).Message);
    }
}
