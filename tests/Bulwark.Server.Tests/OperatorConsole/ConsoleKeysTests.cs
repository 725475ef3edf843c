using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.RegularExpressions;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Security;

namespace Bulwark.Server.Tests.OperatorConsole;

/// <summary>The console's keys page over HTTP: create, list with usage, revoke, rotate, and hostile names shown as text.</summary>
public sealed partial class ConsoleKeysTests
{
    [Fact]
    public async Task ACreatedKeyIsShownOnceAndWorksAgainstTheApiWithinItsModels()
    {
        await using var host = await ConsoleHost.StartAsync();
        var session = await host.SignInAsync();
        using var created = await session.PostFormAsync("console/keys", null, ("name", "from-console"), ("tenant", "team-c"), ("models", "alpha"),
            ("tpd", "1000"), ("rpm", "60"), ("priority", "3"), ("expires", "30d"), ("guard", "flag"));
        Assert.Equal(HttpStatusCode.OK, created.StatusCode);
        var key = IssuedKey().Match(await created.Content.ReadAsStringAsync()).Groups[1].Value;
        Assert.StartsWith("bwk_", key);

        Assert.Equal(HttpStatusCode.OK, await CompleteAsync(host, key, "alpha"));
        Assert.Equal(HttpStatusCode.NotFound, await CompleteAsync(host, key, "beta"));
        Assert.Equal(HttpStatusCode.OK, await CompleteAsync(host, key, "alpha"));

        var record = (await host.Get<Bulwark.Server.Storage.SecurityStorage>().Keys.ListAsync()).Single(k => k.Name == "from-console");
        Assert.Equal(("team-c", 3, 1000L, 60L, GuardPolicy.Flag), (record.Tenant, record.Priority, record.Limits.TokensPerDay, record.Limits.RequestsPerMinute, record.Guard));
        Assert.InRange(record.ExpiresAt!.Value - DateTimeOffset.UtcNow, TimeSpan.FromDays(29.9), TimeSpan.FromDays(30));
        var audit = await host.AuditAsync();
        Assert.Contains(audit, r => r.Kind == "key.created" && r.KeyId == record.Id && r.Detail == $"by admin key {host.Admin.Record.Id} (console)");

        // Listed with today's usage against its daily limit (once the audit writer has the requests' records: a client
        // can read its answer before the record is queued); the secret is never shown again.
        var page = "";
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(5), async () =>
        {
            await host.AuditAsync();
            page = await session.GetStringAsync("console/keys");
            // Three: the 404 for a model the key may not use is a request of the key too (it was not refused by a limit).
            return Row(page, record.Id).Contains("3 requests", StringComparison.Ordinal);
        }), "the keys page did not show the key's three requests: " + Row(page, record.Id));
        Assert.DoesNotContain(key, page);
        var row = Row(page, record.Id);
        // The page request itself is audited as the admin key's.
        Assert.Contains(await host.AuditAsync(), r => r.Kind == "request" && r.Route == "POST /console/keys" && r.KeyId == host.Admin.Record.Id && r.Status == 200);
        Assert.Matches(@" · \d+ of 1000 tokens", row);
        Assert.Contains("active", row);
    }

    [Fact]
    public async Task RevokingFromTheConsoleMakesTheApiRefuseTheKey()
    {
        await using var host = await ConsoleHost.StartAsync();
        var session = await host.SignInAsync();
        Assert.Equal(HttpStatusCode.OK, await CompleteAsync(host, host.Api.Key, "alpha"));
        using var revoked = await session.PostFormAsync("console/keys/revoke", null, ("id", host.Api.Record.Id));
        Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(1), async () => await CompleteAsync(host, host.Api.Key, "alpha") == HttpStatusCode.Unauthorized),
            "the API still took a key revoked from the console a second later");
        Assert.Contains("revoked", Row(await session.GetStringAsync("console/keys"), host.Api.Record.Id));
        using var unknown = await session.PostFormAsync("console/keys/revoke", null, ("id", "nosuchkey000"));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task RotatingFromTheConsoleIssuesANewKeyAndKeepsTheOldOneForItsGrace()
    {
        await using var host = await ConsoleHost.StartAsync();
        var session = await host.SignInAsync();
        using (var bad = await session.PostFormAsync("console/keys/rotate", null, ("id", host.Api.Record.Id), ("grace", "soon")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Contains("grace", await bad.Content.ReadAsStringAsync());
        }
        using var rotated = await session.PostFormAsync("console/keys/rotate", null, ("id", host.Api.Record.Id), ("grace", "1h"));
        Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        var text = await rotated.Content.ReadAsStringAsync();
        var key = IssuedKey().Match(text).Groups[1].Value;
        Assert.Contains("The old key keeps working until", text);
        Assert.Equal(HttpStatusCode.OK, await CompleteAsync(host, key, "alpha"));
        Assert.Equal(HttpStatusCode.OK, await CompleteAsync(host, host.Api.Key, "alpha"));
        using var again = await session.PostFormAsync("console/keys/rotate", null, ("id", host.Api.Record.Id));
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
    }

    [Theory]
    [InlineData("rpm", "abc", "rpm must be a whole number")]
    [InlineData("priority", "10", "priority must be a whole number between 0 and 9")]
    [InlineData("tpd", "-5", "tpd must be a whole number")]
    [InlineData("expires", "soon", "expires must be a lifetime")]
    [InlineData("guard", "maybe", "guard")]
    [InlineData("name", "", "name is required")]
    [InlineData("models", "a\u0001b", "models must be 1 to 100 printable characters")]
    public async Task BadFormValuesAreRefusedWithTheFieldNamedAndNothingIsCreated(string field, string value, string message)
    {
        await using var host = await ConsoleHost.StartAsync();
        var session = await host.SignInAsync();
        var fields = new Dictionary<string, string> { ["name"] = "k", [field] = value };
        using var response = await session.PostFormAsync("console/keys", null, [.. fields.Select(f => (f.Key, f.Value))]);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(System.Net.WebUtility.HtmlEncode(message), await response.Content.ReadAsStringAsync());
        Assert.Equal(2, (await host.Get<Bulwark.Server.Storage.SecurityStorage>().Keys.ListAsync()).Count);
    }

    [Fact]
    public async Task AHostileKeyNameIsShownAsText()
    {
        await using var host = await ConsoleHost.StartAsync();
        const string name = "<script>window.__xss=1</script><img src=x onerror=alert(1)>";
        var issued = await host.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = name, Tenant = "\"><b>t</b>", Models = ["<i>m</i>"] }, "tests");
        var session = await host.SignInAsync();
        var page = await session.GetStringAsync("console/keys");
        Assert.DoesNotContain("<script>window", page);
        Assert.DoesNotContain("<img src=x", page);
        Assert.DoesNotContain("<b>t</b>", page);
        Assert.DoesNotContain("<i>m</i>", page);
        var row = Row(page, issued.Record.Id);
        Assert.Contains(name, System.Net.WebUtility.HtmlDecode(row));
        // The page's only scripts are the console's module.
        Assert.Equal(1, Regex.Count(page, "<script"));
    }

    internal static async Task<HttpStatusCode> CompleteAsync(ConsoleHost host, string key, string model)
    {
        using var client = new HttpClient { BaseAddress = host.Address };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await client.PostAsync("v1/completions",
            new StringContent($$"""{"model":"{{model}}","prompt":"hi","max_tokens":4}""", Encoding.UTF8, "application/json"));
        return response.StatusCode;
    }

    private static string Row(string page, string id)
    {
        var start = page.IndexOf($"<tr data-key-id=\"{id}\">", StringComparison.Ordinal);
        Assert.True(start >= 0, $"no row for key {id}");
        return page[start..page.IndexOf("</tr>", start, StringComparison.Ordinal)];
    }

    [GeneratedRegex("<code id=\"issued-key\">([^<]+)</code>")]
    private static partial Regex IssuedKey();
}
