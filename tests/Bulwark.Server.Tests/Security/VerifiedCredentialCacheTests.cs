using System.Security.Cryptography;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Storage;

namespace Bulwark.Server.Tests.Security;

/// <summary>The key cache remembers the credential that last verified, and that must never widen what is accepted.</summary>
public class VerifiedCredentialCacheTests
{
    private static async Task<(ApiKeyAuthenticator Auth, KeyCache Cache, KeyIssuer Issuer, IAsyncDisposable Storage)> OpenAsync()
    {
        var (storage, _) = await TestDatabases.OpenAsync(TestDatabases.Sqlite);
        var hasher = new ApiKeyHasher(RandomNumberGenerator.GetBytes(32));
        var cache = new KeyCache(storage.Keys, TimeProvider.System, TimeSpan.FromMinutes(5));
        return (new ApiKeyAuthenticator(cache, hasher, TimeProvider.System, null), cache, new KeyIssuer(storage, hasher, TimeProvider.System), storage);
    }

    /// <summary>The same id with another secret: the last character changed within the key alphabet.</summary>
    private static string OtherSecret(string key) => key[..^1] + (key[^1] == 'a' ? 'b' : 'a');

    [Fact]
    public async Task ARepeatedKeyIsAcceptedAndAnotherSecretForTheSameIdIsNotBeforeOrAfterIt()
    {
        var (auth, cache, issuer, storage) = await OpenAsync();
        await using (storage)
        {
            var issued = await issuer.CreateAsync(new KeySpec { Name = "a" }, "test");
            Assert.Equal(AuthFailure.WrongSecret, (await auth.AuthenticateAsync(OtherSecret(issued.Key), default)).Failure);
            for (var i = 0; i < 3; i++)
            {
                var (caller, failure) = await auth.AuthenticateAsync(issued.Key, default);
                Assert.Equal(AuthFailure.None, failure);
                Assert.Equal(issued.Record.Id, caller!.KeyId);
                Assert.Equal(AuthFailure.WrongSecret, (await auth.AuthenticateAsync(OtherSecret(issued.Key), default)).Failure);
            }
            Assert.True((await cache.GetAsync(issued.Record.Id, default)).IsVerified(issued.Key));
        }
    }

    [Fact]
    public async Task ARememberedKeyIsRefusedOnceRevokedAndItsEntryEvicted()
    {
        var (auth, cache, issuer, storage) = await OpenAsync();
        await using (storage)
        {
            var issued = await issuer.CreateAsync(new KeySpec { Name = "a" }, "test");
            Assert.Equal(AuthFailure.None, (await auth.AuthenticateAsync(issued.Key, default)).Failure);
            Assert.True(await issuer.RevokeAsync(issued.Record.Id, "test"));
            cache.Evict(issued.Record.Id); // what the incident feed does on every replica
            Assert.False((await cache.GetAsync(issued.Record.Id, default)).IsVerified(issued.Key));
            Assert.Equal(AuthFailure.Revoked, (await auth.AuthenticateAsync(issued.Key, default)).Failure);
        }
    }

    [Fact]
    public async Task AnAdminKeysSecretUnderTheApiPrefixIsRefusedEvenWhenRemembered()
    {
        var (auth, _, issuer, storage) = await OpenAsync();
        await using (storage)
        {
            var admin = await issuer.CreateAsync(new KeySpec { Name = "ops", IsAdmin = true }, "test");
            Assert.Equal(AuthFailure.None, (await auth.AuthenticateAsync(admin.Key, default)).Failure);
            var asApiKey = ApiKeyFormat.ApiPrefix + admin.Key[ApiKeyFormat.AdminPrefix.Length..];
            Assert.Equal(AuthFailure.WrongSecret, (await auth.AuthenticateAsync(asApiKey, default)).Failure);
        }
    }

    [Fact]
    public async Task AnUnknownIdRemembersNothing()
    {
        var (auth, cache, _, storage) = await OpenAsync();
        await using (storage)
        {
            var (id, key) = ApiKeyFormat.Generate(admin: false);
            Assert.Equal(AuthFailure.UnknownKey, (await auth.AuthenticateAsync(key, default)).Failure);
            var entry = await cache.GetAsync(id, default);
            Assert.Null(entry.Record);
            Assert.False(entry.IsVerified(key));
            Assert.Throws<InvalidOperationException>(() => entry.RememberVerified(key));
        }
    }
}
