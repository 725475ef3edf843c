using System.Net;
using System.Text.Json;
using Bulwark.Server.Tests.Security;

namespace Bulwark.Server.Tests.Cli;

public class KeysCommandTests
{
    [Fact]
    public async Task CreateWithJsonPrintsOneObjectWhoseKeyARunningServerAccepts()
    {
        var dir = SecuredApp.NewDataDir();
        await using var app = await SecuredApp.StartAsync(dir);
        var created = await CliHarness.RunAsync("keys", "create", "--name", "ci", "--tenant", "team-a", "--models", "m1, m2", "--rpm", "60",
            "--tpm", "1000", "--tpd", "50000", "--concurrency", "4", "--priority", "3", "--expires", "30d", "--json", "--data-dir", dir);
        Assert.True(created.ExitCode == 0, created.Error);
        using var json = JsonDocument.Parse(created.Output);
        var root = json.RootElement;
        var key = root.GetProperty("key").GetString()!;
        Assert.StartsWith("bwk_" + root.GetProperty("id").GetString() + "_", key);
        Assert.Equal("team-a", root.GetProperty("tenant").GetString());
        Assert.Equal(["m1", "m2"], root.GetProperty("models").EnumerateArray().Select(m => m.GetString()));
        Assert.Equal(60, root.GetProperty("rpm").GetInt64());
        Assert.Equal(1000, root.GetProperty("tpm").GetInt64());
        Assert.Equal(50000, root.GetProperty("tokens_per_day").GetInt64());
        Assert.Equal(4, root.GetProperty("concurrency").GetInt64());
        Assert.Equal(3, root.GetProperty("priority").GetInt32());
        var expires = root.GetProperty("expires_at").GetDateTimeOffset();
        Assert.InRange(expires - DateTimeOffset.UtcNow, TimeSpan.FromDays(29.9), TimeSpan.FromDays(30));

        using var response = await app.Client(key).GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var denied = await app.Client(key).PostAsync("/v1/chat/completions", SecuredApp.Chat("m3"));
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
    }

    [Fact]
    public async Task CreateWithoutJsonShowsTheKeyOnceAndHowToUseIt()
    {
        var dir = SecuredApp.NewDataDir();
        var created = await CliHarness.RunAsync("keys", "create", "--name", "plain", "--data-dir", dir);
        Assert.Equal(0, created.ExitCode);
        var lines = created.Output.Split('\n', StringSplitOptions.TrimEntries);
        Assert.Single(lines, l => l.StartsWith("bwk_", StringComparison.Ordinal));
        Assert.Contains("shown only this once", created.Output);
        Assert.Contains("Authorization: Bearer", created.Output);

        var list = await CliHarness.RunAsync("keys", "list", "--data-dir", dir);
        Assert.Contains("plain", list.Output);
        Assert.DoesNotContain(lines.Single(l => l.StartsWith("bwk_", StringComparison.Ordinal)), list.Output);
    }

    [Fact]
    public async Task HourlyLimitsAreStoredShownInTheListAndEnforcedByARunningServer()
    {
        var dir = SecuredApp.NewDataDir();
        // The server's clock stands still, so the hour cannot turn between the requests.
        await using var app = await SecuredApp.StartAsync(dir, clock: new Quotas.ManualClock(new DateTimeOffset(2026, 1, 15, 10, 20, 0, TimeSpan.Zero)));
        var created = await CliHarness.RunAsync("keys", "create", "--name", "hourly", "--rpm", "60", "--rph", "2", "--tpm", "1000",
            "--tph", "50000", "--json", "--data-dir", dir);
        var (_, key) = Key(created);
        using (var json = JsonDocument.Parse(created.Output))
        {
            Assert.Equal(2, json.RootElement.GetProperty("rph").GetInt64());
            Assert.Equal(50000, json.RootElement.GetProperty("tph").GetInt64());
        }

        var list = await CliHarness.RunAsync("keys", "list", "--data-dir", dir);
        var lines = list.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var header = lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var row = lines.Single(l => l.Contains("hourly")).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("2", row[Array.IndexOf(header, "RPH")]);
        Assert.Equal("50000", row[Array.IndexOf(header, "TPH")]);
        Assert.Equal("60", row[Array.IndexOf(header, "RPM")]);

        using var client = app.Client(key);
        for (var i = 0; i < 2; i++) Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"))).StatusCode);
        using var refused = await client.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"));
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Contains("requests_per_hour", await refused.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ListJsonShowsEveryKeyButNeverItsTextOrHash()
    {
        var dir = SecuredApp.NewDataDir();
        var a = Key(await CliHarness.RunAsync("keys", "create", "--name", "a", "--json", "--data-dir", dir));
        var b = Key(await CliHarness.RunAsync("keys", "create", "--name", "b", "--admin", "--json", "--data-dir", dir));
        Assert.StartsWith("bwa_", b.Key);

        var list = await CliHarness.RunAsync("keys", "list", "--json", "--data-dir", dir);
        Assert.Equal(0, list.ExitCode);
        using var json = JsonDocument.Parse(list.Output);
        var rows = json.RootElement.EnumerateArray().ToList();
        Assert.Equal([a.Id, b.Id], rows.Select(r => r.GetProperty("id").GetString()));
        Assert.Equal([false, true], rows.Select(r => r.GetProperty("admin").GetBoolean()));
        Assert.All(rows, r => Assert.False(r.TryGetProperty("key", out _)));
        Assert.DoesNotContain(a.Key[17..], list.Output);
        Assert.DoesNotContain("hash", list.Output);
    }

    /// <summary>A running server and a key made through the CLI in its data directory, which the server has already cached.</summary>
    private static async Task<(string Dir, SecuredApp App, (string Id, string Key) Issued)> ServerWithCachedKeyAsync(string name)
    {
        var dir = SecuredApp.NewDataDir();
        var app = await SecuredApp.StartAsync(dir);
        var issued = Key(await CliHarness.RunAsync("keys", "create", "--name", name, "--json", "--data-dir", dir));
        Assert.Equal(HttpStatusCode.OK, (await app.Client(issued.Key).GetAsync("/v1/models")).StatusCode);
        return (dir, app, issued);
    }

    [Fact]
    public async Task RevokeThroughTheCliIsRefusedByARunningServerWithinOneSecond()
    {
        var (dir, app, issued) = await ServerWithCachedKeyAsync("r");
        await using var _ = app;

        var revoked = await CliHarness.RunAsync("keys", "revoke", issued.Id, "--data-dir", dir);
        Assert.Equal(0, revoked.ExitCode);
        Assert.Equal($"revoked {issued.Id}\n", revoked.Output.ReplaceLineEndings("\n"));
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(2) /* 250 ms poll; room for a loaded CI machine */, async () =>
            (await app.Client(issued.Key).GetAsync("/v1/models")).StatusCode == HttpStatusCode.Unauthorized));
    }

    [Fact]
    public async Task RotateIssuesAWorkingKeyWithTheSameSettingsAndRetiresTheOld()
    {
        var dir = SecuredApp.NewDataDir();
        await using var app = await SecuredApp.StartAsync(dir);
        var old = Key(await CliHarness.RunAsync("keys", "create", "--name", "svc", "--tenant", "t9", "--rpm", "7", "--json", "--data-dir", dir));
        var rotated = await CliHarness.RunAsync("keys", "rotate", old.Id, "--json", "--data-dir", dir);
        Assert.True(rotated.ExitCode == 0, rotated.Error);
        using var json = JsonDocument.Parse(rotated.Output);
        var fresh = json.RootElement.GetProperty("key").GetString()!;
        Assert.Equal("t9", json.RootElement.GetProperty("tenant").GetString());
        Assert.Equal(7, json.RootElement.GetProperty("rpm").GetInt64());

        Assert.Equal(HttpStatusCode.OK, (await app.Client(fresh).GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await app.Client(old.Key).GetAsync("/v1/models")).StatusCode);
        var again = await CliHarness.RunAsync("keys", "rotate", old.Id, "--data-dir", dir);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains($"no active key with id '{old.Id}'", again.Error);
    }

    [Fact]
    public async Task RotateWithGraceKeepsTheOldKeyWorkingAndTheListShowsItRetiring()
    {
        var (dir, app, old) = await ServerWithCachedKeyAsync("svc");
        await using var _ = app;

        var before = DateTimeOffset.UtcNow;
        var rotated = await CliHarness.RunAsync("keys", "rotate", old.Id, "--grace", "24h", "--json", "--data-dir", dir);
        Assert.True(rotated.ExitCode == 0, rotated.Error);
        using var json = JsonDocument.Parse(rotated.Output);
        var fresh = json.RootElement.GetProperty("key").GetString()!;
        var freshId = json.RootElement.GetProperty("id").GetString()!;
        var from = json.RootElement.GetProperty("rotated_from");
        Assert.Equal(old.Id, from.GetProperty("id").GetString());
        var until = from.GetProperty("retires_at").GetDateTimeOffset();
        Assert.InRange(until - before, TimeSpan.FromHours(24) - TimeSpan.FromSeconds(1), TimeSpan.FromHours(24) + TimeSpan.FromMinutes(1));

        // Both keys work: the server picked the rotation up (a second at most) and the old key's grace runs for a day.
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(2), async () =>
            (await app.Get<Bulwark.Server.Security.KeyCache>().GetAsync(old.Id, default)).Record?.RetiresAt is not null));
        Assert.Equal(HttpStatusCode.OK, (await app.Client(old.Key).GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await app.Client(fresh).GetAsync("/v1/models")).StatusCode);

        var list = await CliHarness.RunAsync("keys", "list", "--data-dir", dir);
        var stamp = until.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Matches($@"{old.Id}\s+api\s+retiring until {stamp}\s+default\s+svc\s", list.Output);
        Assert.Matches($@"{freshId}\s+api\s+active\s+default\s+svc\s", list.Output);
        var listed = JsonDocument.Parse((await CliHarness.RunAsync("keys", "list", "--json", "--data-dir", dir)).Output).RootElement
            .EnumerateArray().Single(k => k.GetProperty("id").GetString() == old.Id);
        Assert.Equal(until, listed.GetProperty("retires_at").GetDateTimeOffset());
        Assert.Equal(freshId, listed.GetProperty("replaced_by").GetString());

        var again = await CliHarness.RunAsync("keys", "rotate", old.Id, "--data-dir", dir);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains($"key {old.Id} was already rotated into {freshId} and works until {stamp}: rotate {freshId} instead, or revoke {old.Id} to end its grace now", again.Error);

        // Revoking ends the grace at once.
        Assert.Equal(0, (await CliHarness.RunAsync("keys", "revoke", old.Id, "--data-dir", dir)).ExitCode);
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(2), async () =>
            (await app.Client(old.Key).GetAsync("/v1/models")).StatusCode == HttpStatusCode.Unauthorized));
        Assert.Matches($@"{old.Id}\s+api\s+revoked\s", (await CliHarness.RunAsync("keys", "list", "--data-dir", dir)).Output);
    }

    [Fact]
    public async Task RotateWithGracePrintsWhenTheOldKeyStopsWorking()
    {
        var dir = SecuredApp.NewDataDir();
        var old = Key(await CliHarness.RunAsync("keys", "create", "--name", "svc", "--json", "--data-dir", dir));
        var rotated = await CliHarness.RunAsync("keys", "rotate", old.Id, "--grace", "90m", "--data-dir", dir);
        Assert.True(rotated.ExitCode == 0, rotated.Error);
        Assert.StartsWith($"rotated {old.Id} into API key ", rotated.Output);
        Assert.Matches($@"The old key {old.Id} keeps working until \S+Z \(grace 90m\); then every server refuses it\.", rotated.Output);
    }

    [Theory]
    [InlineData("31d", "grace must be at most 30d (720h); got '31d'")]
    [InlineData("721h", "grace must be at most 30d (720h); got '721h'")]
    [InlineData("soon", "grace must be 0 (revoke the old key at once) or a duration such as 90s, 30m, 24h or 7d; got 'soon'")]
    [InlineData("-1h", "grace must be 0 (revoke the old key at once) or a duration such as 90s, 30m, 24h or 7d; got '-1h'")]
    [InlineData("1.5h", "grace must be 0 (revoke the old key at once) or a duration such as 90s, 30m, 24h or 7d; got '1.5h'")]
    public async Task AGraceOutsideItsBoundsOrFormFailsAndRotatesNothing(string grace, string message)
    {
        var dir = SecuredApp.NewDataDir();
        var old = Key(await CliHarness.RunAsync("keys", "create", "--name", "svc", "--json", "--data-dir", dir));
        var result = await CliHarness.RunAsync("keys", "rotate", old.Id, "--grace", grace, "--data-dir", dir);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal($"error: {message}", result.Error.Trim());
        Assert.Equal("", result.Output);
        var list = JsonDocument.Parse((await CliHarness.RunAsync("keys", "list", "--json", "--data-dir", dir)).Output).RootElement;
        var only = Assert.Single(list.EnumerateArray());
        Assert.False(only.GetProperty("revoked").GetBoolean());
        Assert.Equal(JsonValueKind.Null, only.GetProperty("retires_at").ValueKind);
    }

    [Theory]
    [InlineData("0")]
    [InlineData(null)]
    public async Task RotateWithoutGraceOrWithZeroRevokesTheOldKeyAtOnce(string? grace)
    {
        var dir = SecuredApp.NewDataDir();
        var old = Key(await CliHarness.RunAsync("keys", "create", "--name", "svc", "--json", "--data-dir", dir));
        string[] args = grace is null ? ["keys", "rotate", old.Id, "--data-dir", dir] : ["keys", "rotate", old.Id, "--grace", grace, "--data-dir", dir];
        var rotated = await CliHarness.RunAsync(args);
        Assert.True(rotated.ExitCode == 0, rotated.Error);
        Assert.DoesNotContain("keeps working", rotated.Output);
        Assert.Matches($@"{old.Id}\s+api\s+revoked\s", (await CliHarness.RunAsync("keys", "list", "--data-dir", dir)).Output);
    }

    [Theory]
    [InlineData("--rpm", "-1", "rpm must be 0 (no limit) or more; got -1")]
    [InlineData("--tpm", "-5", "tpm must be 0 (no limit) or more; got -5")]
    [InlineData("--rph", "-1", "rph must be 0 (no limit) or more; got -1")]
    [InlineData("--tph", "-7", "tph must be 0 (no limit) or more; got -7")]
    [InlineData("--tpd", "-2", "tokens-per-day must be 0 (no limit) or more; got -2")]
    [InlineData("--concurrency", "-3", "concurrency must be 0 (no limit) or more; got -3")]
    [InlineData("--priority", "10", "priority must be between 0 and 9; got 10")]
    [InlineData("--priority", "-1", "priority must be between 0 and 9; got -1")]
    [InlineData("--expires", "0d", "expires lifetime must be 1 to 3650 days")]
    [InlineData("--expires", "3651d", "expires lifetime must be 1 to 3650 days")]
    [InlineData("--expires", "2001-01-01", "expires must be in the future")]
    [InlineData("--expires", "soon", "expires must be a lifetime (90m, 12h, 30d) or a date")]
    [InlineData("--tenant", "a,b", "tenant must be 1 to 100 printable characters without commas; got 'a,b'")]
    public async Task InvalidSettingsFailWithTheFieldAndValueAndCreateNothing(string flag, string value, string message)
    {
        var dir = SecuredApp.NewDataDir();
        var result = await CliHarness.RunAsync("keys", "create", "--name", "x", flag, value, "--data-dir", dir);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(message, result.Error);
        Assert.Equal("", result.Output);
        var list = await CliHarness.RunAsync("keys", "list", "--json", "--data-dir", dir);
        Assert.Equal("[]", list.Output.Trim());
    }

    [Theory]
    [InlineData("9")]
    [InlineData("0")]
    public async Task PriorityAtTheLimitsIsAccepted(string priority)
    {
        var result = await CliHarness.RunAsync("keys", "create", "--name", "p", "--priority", priority, "--json", "--data-dir", SecuredApp.NewDataDir());
        Assert.True(result.ExitCode == 0, result.Error);
    }

    [Fact]
    public async Task RevokingAnUnknownIdFails()
    {
        var result = await CliHarness.RunAsync("keys", "revoke", "aaaaaaaaaaaa", "--data-dir", SecuredApp.NewDataDir());
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("no key with id 'aaaaaaaaaaaa'", result.Error);
    }

    [Fact]
    public async Task APostgresStoreWithoutTheSharedHmacSecretIsRefusedBeforeConnecting()
    {
        var result = await CliHarness.RunAsync("keys", "list", "--database", "Host=127.0.0.1;Port=1;Username=nobody", "--data-dir", SecuredApp.NewDataDir());
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Bulwark__Security__HmacSecret", result.Error);
    }

    internal static (string Id, string Key) Key(CliHarness.Result created)
    {
        Assert.True(created.ExitCode == 0, created.Error);
        using var json = JsonDocument.Parse(created.Output);
        return (json.RootElement.GetProperty("id").GetString()!, json.RootElement.GetProperty("key").GetString()!);
    }
}
