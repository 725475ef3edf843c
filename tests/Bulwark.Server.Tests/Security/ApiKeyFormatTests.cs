using Bulwark.Server.Security;

namespace Bulwark.Server.Tests.Security;

public class ApiKeyFormatTests
{
    [Fact]
    public void GeneratedKeysParseBackToTheirIdAndKind()
    {
        for (var i = 0; i < 100; i++)
        {
            var admin = i % 2 == 0;
            var (id, key) = ApiKeyFormat.Generate(admin);
            Assert.True(ApiKeyFormat.TryParse(key, out var parsedId, out var parsedAdmin));
            Assert.Equal(id, parsedId.ToString());
            Assert.Equal(admin, parsedAdmin);
            Assert.Matches(admin ? "^bwa_[a-z2-7]{12}_[a-z2-7]{52}$" : "^bwk_[a-z2-7]{12}_[a-z2-7]{52}$", key);
        }
    }

    [Fact]
    public void GeneratedSecretsAreDistinct()
    {
        var keys = Enumerable.Range(0, 1000).Select(_ => ApiKeyFormat.Generate(false).Key).ToHashSet();
        Assert.Equal(1000, keys.Count);
    }

    [Theory]
    [InlineData("")]
    [InlineData("bwx_aaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    [InlineData("BWK_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("bwk_aaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    [InlineData("bwk_aaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    [InlineData("bwk_aaaaaaaaaaaa-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    [InlineData("bwk_aaaaaaaaaaa1_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    public void MalformedKeysDoNotParse(string text) => Assert.False(ApiKeyFormat.TryParse(text, out _, out _));

    [Fact]
    public void HasherVerifiesOnlyTheExactKey()
    {
        var hasher = new ApiKeyHasher(new byte[32]);
        var (_, key) = ApiKeyFormat.Generate(false);
        var stored = Convert.FromBase64String(hasher.Hash(key));
        Assert.True(hasher.Verify(key, stored));
        Assert.False(hasher.Verify(key[..^1] + (key[^1] == 'a' ? 'b' : 'a'), stored));
        Assert.False(hasher.Verify(key.ToUpperInvariant(), stored));
    }

    [Theory]
    [InlineData(31, false)]
    [InlineData(32, true)]
    [InlineData(64, true)]
    public void ServerSecretMustBeAtLeast32Bytes(int length, bool accepted)
    {
        var error = Record.Exception(() => new ApiKeyHasher(new byte[length]));
        Assert.Equal(accepted, error is null);
    }
}
