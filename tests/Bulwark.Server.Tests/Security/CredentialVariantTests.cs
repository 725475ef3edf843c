using System.ClientModel;
using System.Net;
using Bulwark.Server.Security;
using OpenAI;

namespace Bulwark.Server.Tests.Security;

/// <summary>How every way of presenting a key is treated, as docs/security.md documents it.</summary>
public class CredentialVariantTests
{
    public enum Expect { Accepted = 200, Unauthorized = 401, Forbidden = 403 }

    [Theory]
    [InlineData("Authorization", "Bearer {key}", Expect.Accepted)]
    [InlineData("authorization", "Bearer {key}", Expect.Accepted)]
    [InlineData("AUTHORIZATION", "bearer {key}", Expect.Accepted)]
    [InlineData("Authorization", "BEARER {key}", Expect.Accepted)]
    [InlineData("Authorization", "Bearer   {key}", Expect.Accepted)]
    [InlineData("Authorization", "  Bearer {key}  ", Expect.Accepted)]
    [InlineData("Authorization", "Bearer\t{key}", Expect.Unauthorized)]
    [InlineData("Authorization", "Bearer{key}", Expect.Unauthorized)]
    [InlineData("Authorization", "Basic {key}", Expect.Unauthorized)]
    [InlineData("Authorization", "{key}", Expect.Unauthorized)]
    [InlineData("Authorization", "Bearer {key} {key}", Expect.Unauthorized)]
    [InlineData("Authorization", "Bearer {key},Bearer {key}", Expect.Unauthorized)]
    [InlineData("Authorization", "Bearer {KEY}", Expect.Unauthorized)]
    [InlineData("Authorization", "Bearer {key}x", Expect.Unauthorized)]
    [InlineData("Authorization", "Bearer ", Expect.Unauthorized)]
    [InlineData("x-api-key", "{key}", Expect.Unauthorized)]
    [InlineData("Api-Key", "{key}", Expect.Unauthorized)]
    public async Task HeaderVariantsBehaveAsDocumented(string header, string value, Expect expected)
    {
        await using var app = await SecuredApp.StartAsync(SecuredApp.NewDataDir());
        var key = (await app.CreateKeyAsync(new KeySpec { Name = "k" })).Key;
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.TryAddWithoutValidation(header, value.Replace("{key}", key).Replace("{KEY}", key.ToUpperInvariant()));
        using var response = await app.Client().SendAsync(request);
        Assert.Equal((HttpStatusCode)expected, response.StatusCode);
    }

    [Fact]
    public async Task TwoAuthorizationHeadersAreRefusedEvenIfOneIsValid()
    {
        await using var app = await SecuredApp.StartAsync(SecuredApp.NewDataDir());
        var key = (await app.CreateKeyAsync(new KeySpec { Name = "k" })).Key;
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.TryAddWithoutValidation("Authorization", ["Bearer " + key, "Bearer nothing"]);
        using var response = await app.Client().SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Theory]
    [InlineData("/v1/models?api_key={key}", false)]
    [InlineData("/v1/models?key={key}", false)]
    [InlineData("/v1/models?foo={key}", false)]
    [InlineData("/v1/models?api_key={key}", true)]
    [InlineData("/v1/models?token=abc", true)]
    public async Task KeysInTheQueryStringAreRefusedEvenWithAValidHeader(string url, bool withHeader)
    {
        await using var app = await SecuredApp.StartAsync(SecuredApp.NewDataDir());
        var key = (await app.CreateKeyAsync(new KeySpec { Name = "k" })).Key;
        using var client = withHeader ? app.Client(key) : app.Client();
        using var response = await client.GetAsync(url.Replace("{key}", key));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("URL", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task RevokedExpiredAndForeignKeysAreRefused()
    {
        await using var app = await SecuredApp.StartAsync(SecuredApp.NewDataDir());
        var revoked = await app.CreateKeyAsync(new KeySpec { Name = "r" });
        await app.Get<KeyIssuer>().RevokeAsync(revoked.Record.Id, "test");
        var expiring = await app.CreateKeyAsync(new KeySpec { Name = "e", ExpiresAt = DateTimeOffset.UtcNow.AddMilliseconds(300) });
        var (_, foreign) = ApiKeyFormat.Generate(false);
        var valid = await app.CreateKeyAsync(new KeySpec { Name = "v" });
        // Same id, different secret: a key made up from a listed id is refused.
        var forged = Tamper(valid.Key);

        await Task.Delay(400);
        foreach (var key in new[] { revoked.Key, expiring.Key, foreign, forged })
            Assert.Equal(HttpStatusCode.Unauthorized, (await app.Client(key).GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await app.Client(valid.Key).GetAsync("/v1/models")).StatusCode);
    }

    [Fact]
    public async Task AnAdminKeyWithTheApiPrefixIsRefused()
    {
        await using var app = await SecuredApp.StartAsync(SecuredApp.NewDataDir());
        var admin = await app.CreateKeyAsync(new KeySpec { Name = "a", IsAdmin = true });
        var relabelled = ApiKeyFormat.ApiPrefix + admin.Key[4..];
        Assert.Equal(HttpStatusCode.Unauthorized, (await app.Client(relabelled).GetAsync("/admin/keys")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await app.Client(admin.Key).GetAsync("/admin/keys")).StatusCode);
    }

    [Fact]
    public async Task ModelAclRefusesModelsTheKeyDoesNotList()
    {
        await using var app = await SecuredApp.StartAsync(SecuredApp.NewDataDir());
        var key = (await app.CreateKeyAsync(new KeySpec { Name = "k", Models = ["m1"] })).Key;
        Assert.Equal(HttpStatusCode.OK, (await app.Client(key).PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"))).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await app.Client(key).PostAsync("/v1/chat/completions", SecuredApp.Chat("m2"))).StatusCode);
    }

    [Fact]
    public async Task TheOfficialOpenAiClientAuthenticatesWithABulwarkKey()
    {
        await using var app = await SecuredApp.StartAsync(SecuredApp.NewDataDir());
        var key = (await app.CreateKeyAsync(new KeySpec { Name = "sdk" })).Key;
        var options = new OpenAIClientOptions { Endpoint = new Uri(app.Address, "/v1") };

        var models = await new OpenAIClient(new ApiKeyCredential(key), options).GetOpenAIModelClient().GetModelsAsync();
        Assert.Equal("m1", Assert.Single(models.Value).Id);

        var wrong = await Assert.ThrowsAsync<ClientResultException>(() =>
            new OpenAIClient(new ApiKeyCredential(Tamper(key)), options).GetOpenAIModelClient().GetModelsAsync());
        Assert.Equal(401, wrong.Status);
    }

    /// <summary>The same key with its last character changed (still well-formed).</summary>
    internal static string Tamper(string key) => key[..^1] + (key[^1] == 'a' ? 'b' : 'a');
}
