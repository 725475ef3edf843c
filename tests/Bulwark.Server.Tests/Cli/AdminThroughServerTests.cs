using System.Net;
using System.Text.Json;
using Bulwark.Server.Incidents;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Security;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Tests.Cli;

/// <summary>
/// The CLI's incident controls with <c>--url</c>: each goes through a running server's admin API with
/// the admin key from <c>BULWARK_ADMIN_KEY</c> (the audit log names that admin key as the actor, which
/// the store-based mode cannot), and takes effect on the server as the store-based mode does.
/// </summary>
public class AdminThroughServerTests
{
    private static readonly TimeSpan PropagationAllowance = AdminCommandTests.PropagationAllowance;

    private static async Task<(SecuredApp App, string Url, string Admin, string AdminId)> StartAsync()
    {
        var app = await SecuredApp.StartAsync(SecuredApp.NewDataDir());
        var admin = await app.CreateKeyAsync(new KeySpec { Name = "ops", IsAdmin = true });
        return (app, app.Address.ToString(), admin.Key, admin.Record.Id);
    }

    [Fact]
    public async Task BlockListAndUnblockGoThroughTheServer()
    {
        var (app, url, admin, adminId) = await StartAsync();
        await using var _ = app;

        var blocked = await CliHarness.RunWithAdminKeyAsync(admin, "admin", "block-ip", "192.0.2.7/24", "--reason", "drill", "--url", url);
        Assert.True(blocked.ExitCode == 0, blocked.Error);
        Assert.Equal("blocked 192.0.2.0/24", blocked.Output.Trim());
        Assert.True(await Eventually.WithinAsync(PropagationAllowance, () => Task.FromResult(app.Get<IpBlockList>().IsBlocked(IPAddress.Parse("192.0.2.200")))));
        var audit = Assert.Single(await app.Get<SecurityStorage>().Audit.ReadRecentAsync(10, "ip.blocked"));
        Assert.Contains($"by admin key {adminId}", audit.Detail);

        var listed = await CliHarness.RunWithAdminKeyAsync(admin, "admin", "ip-blocks", "--json", "--url", url);
        Assert.True(listed.ExitCode == 0, listed.Error);
        using (var json = JsonDocument.Parse(listed.Output))
        {
            var only = Assert.Single(json.RootElement.EnumerateArray());
            Assert.Equal("192.0.2.0/24", only.GetProperty("cidr").GetString());
            Assert.Equal("drill", only.GetProperty("reason").GetString());
        }
        var table = await CliHarness.RunWithAdminKeyAsync(admin, "admin", "ip-blocks", "--url", url);
        Assert.Contains("192.0.2.0/24", table.Output);

        var unblocked = await CliHarness.RunWithAdminKeyAsync(admin, "admin", "unblock-ip", "192.0.2.0/24", "--url", url);
        Assert.True(unblocked.ExitCode == 0, unblocked.Error);
        Assert.Equal("unblocked 192.0.2.0/24", unblocked.Output.Trim());
        Assert.True(await Eventually.WithinAsync(PropagationAllowance, () => Task.FromResult(!app.Get<IpBlockList>().IsBlocked(IPAddress.Parse("192.0.2.200")))));

        var again = await CliHarness.RunWithAdminKeyAsync(admin, "admin", "unblock-ip", "192.0.2.0/24", "--url", url);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("the server answered 404: '192.0.2.0/24' is not blocked", again.Error);
        var bad = await CliHarness.RunWithAdminKeyAsync(admin, "admin", "block-ip", "10.0.0.0/33", "--url", url);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("the server answered 400: prefix length in '10.0.0.0/33' must be between 0 and 32", bad.Error);
    }

    [Fact]
    public async Task LogLevelGoesThroughTheServer()
    {
        var (app, url, admin, adminId) = await StartAsync();
        await using var _ = app;
        var set = await CliHarness.RunWithAdminKeyAsync(admin, "admin", "log-level", "warning", "--url", url);
        Assert.True(set.ExitCode == 0, set.Error);
        Assert.Equal("log level set to Warning on every server", set.Output.Trim());
        Assert.True(await Eventually.WithinAsync(PropagationAllowance, () => Task.FromResult(app.Get<RuntimeLogLevel>().Override == LogLevel.Warning)));
        Assert.Contains($"by admin key {adminId}", Assert.Single(await app.Get<SecurityStorage>().Audit.ReadRecentAsync(10, "log.level")).Detail);

        Assert.Equal(0, (await CliHarness.RunWithAdminKeyAsync(admin, "admin", "log-level", "default", "--url", url)).ExitCode);
        Assert.True(await Eventually.WithinAsync(PropagationAllowance, () => Task.FromResult(app.Get<RuntimeLogLevel>().Override is null)));
    }

    [Fact]
    public async Task CancelGoesThroughTheServerAndStopsTheRequest()
    {
        var (app, url, admin, _) = await StartAsync();
        await using var __ = app;
        var key = (await app.CreateKeyAsync(new KeySpec { Name = "slow" })).Key;
        var pending = app.Client(key).GetAsync("/v1/wait");
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(5), () => Task.FromResult(app.Get<ActiveRequests>().Count == 1)));
        var id = app.Get<ActiveRequests>().List().Single().RequestId;
        var table = await CliHarness.RunWithAdminKeyAsync(admin, "admin", "requests", "--url", url);
        Assert.True(table.ExitCode == 0, table.Error);
        var line = Assert.Single(table.Output.Split('\n'), l => l.StartsWith(id, StringComparison.Ordinal));
        Assert.Contains(app.Get<ActiveRequestPublisher>().ReplicaId, line);
        Assert.EndsWith("/v1/wait", line.TrimEnd());

        var cancelled = await CliHarness.RunWithAdminKeyAsync(admin, "admin", "cancel", id, "--url", url);
        Assert.True(cancelled.ExitCode == 0, cancelled.Error);
        Assert.Equal($"cancel of {id} sent to every server", cancelled.Output.Trim());
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => pending.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task CreateGoesThroughTheServer()
    {
        var (app, url, admin, adminId) = await StartAsync();
        await using var _ = app;

        var created = await CliHarness.RunWithAdminKeyAsync(admin, "keys", "create", "--name", "remote", "--tenant", "team-b", "--rpm", "60",
            "--models", "m1,m2", "--guard", "block", "--json", "--url", url);
        Assert.True(created.ExitCode == 0, created.Error);
        using var json = JsonDocument.Parse(created.Output);
        var root = json.RootElement;
        Assert.Equal("team-b", root.GetProperty("tenant").GetString());
        Assert.Equal(60, root.GetProperty("rpm").GetInt64());
        Assert.Equal(["m1", "m2"], root.GetProperty("models").EnumerateArray().Select(m => m.GetString()));
        Assert.Equal("block", root.GetProperty("guard").GetString());
        Assert.Equal(HttpStatusCode.OK, (await app.Client(root.GetProperty("key").GetString()!).GetAsync("/v1/models")).StatusCode);
        Assert.Contains($"by admin key {adminId}", Assert.Single(await app.Get<SecurityStorage>().Audit.ReadRecentAsync(10, "key.created"),
            e => e.KeyId == root.GetProperty("id").GetString()).Detail);

        var text = await CliHarness.RunWithAdminKeyAsync(admin, "keys", "create", "--name", "ops2", "--admin", "--url", url);
        Assert.True(text.ExitCode == 0, text.Error);
        Assert.StartsWith("created admin key ", text.Output);
        Assert.Contains("\nbwa_", text.Output);

        var invalid = await CliHarness.RunWithAdminKeyAsync(admin, "keys", "create", "--name", "x", "--priority", "-1", "--url", url);
        Assert.NotEqual(0, invalid.ExitCode);
        Assert.Single(await app.Get<SecurityStorage>().Keys.ListAsync(), k => k.Name == "remote");
    }

    [Fact]
    public async Task ListGoesThroughTheServerAndPrintsAsTheStoreDoes()
    {
        var dir = SecuredApp.NewDataDir();
        await using var app = await SecuredApp.StartAsync(dir);
        var admin = await app.CreateKeyAsync(new KeySpec { Name = "ops", IsAdmin = true });
        var revoked = await app.CreateKeyAsync(new KeySpec { Name = "old", Tenant = "team-c", Limits = new KeyLimits(60, 1000, 0, 2) });
        await app.Get<KeyIssuer>().RevokeAsync(revoked.Record.Id, "test");
        var url = app.Address.ToString();

        var remote = await CliHarness.RunWithAdminKeyAsync(admin.Key, "keys", "list", "--json", "--url", url);
        Assert.True(remote.ExitCode == 0, remote.Error);
        var local = await CliHarness.RunAsync("keys", "list", "--json", "--data-dir", dir);
        Assert.True(local.ExitCode == 0, local.Error);
        using (var remoteJson = JsonDocument.Parse(remote.Output))
        using (var localJson = JsonDocument.Parse(local.Output))
        {
            Assert.Equal(localJson.RootElement.GetArrayLength(), remoteJson.RootElement.GetArrayLength());
            Assert.Equal(localJson.RootElement.EnumerateArray().Select(k => k.GetProperty("id").GetString()),
                remoteJson.RootElement.EnumerateArray().Select(k => k.GetProperty("id").GetString()));
            Assert.DoesNotContain(remoteJson.RootElement.EnumerateArray(), k => k.TryGetProperty("key", out _) || k.TryGetProperty("hash", out _));
        }

        var table = await CliHarness.RunWithAdminKeyAsync(admin.Key, "keys", "list", "--url", url);
        Assert.True(table.ExitCode == 0, table.Error);
        Assert.Equal((await CliHarness.RunAsync("keys", "list", "--data-dir", dir)).Output, table.Output);
        Assert.Matches($@"{revoked.Record.Id}\s+api\s+revoked\s+team-c\s+old\s+60\s+-\s+1000\s+-\s+-\s+2\s+0\s+\*", table.Output); // RPM RPH TPM TPH TPD CONC P MODELS
        Assert.Matches($@"{admin.Record.Id}\s+admin\s+active", table.Output);

        var both = await CliHarness.RunWithAdminKeyAsync(admin.Key, "keys", "list", "--url", url, "--data-dir", dir);
        Assert.NotEqual(0, both.ExitCode);
        Assert.Contains("give one or the other", both.Error);
    }

    [Fact]
    public async Task AuditGoesThroughTheServerAndPrintsAsTheStoreDoes()
    {
        var dir = SecuredApp.NewDataDir();
        await using var app = await SecuredApp.StartAsync(dir);
        var admin = await app.CreateKeyAsync(new KeySpec { Name = "ops", IsAdmin = true });
        var user = await app.CreateKeyAsync(new KeySpec { Name = "user" });
        Assert.Equal(HttpStatusCode.OK, (await app.Client(user.Key).GetAsync("/v1/models")).StatusCode);
        await app.Get<Bulwark.Server.Audit.AuditWriter>().FlushAsync();
        var url = app.Address.ToString();

        foreach (var args in new[] { new[] { "--json" }, [], ["--kind", "key.created", "--limit", "1"], ["--kind", "request"] })
        {
            // Each call through the server is itself an audited request: write the last one's record now, read the
            // store, then ask the server, whose own record is written only after it has answered.
            await app.Get<Bulwark.Server.Audit.AuditWriter>().FlushAsync();
            var local = await CliHarness.RunAsync(["admin", "audit", .. args, "--data-dir", dir]);
            Assert.True(local.ExitCode == 0, local.Error);
            var remote = await CliHarness.RunWithAdminKeyAsync(admin.Key, ["admin", "audit", .. args, "--url", url]);
            Assert.True(remote.ExitCode == 0, remote.Error);
            Assert.Equal(local.Output, remote.Output);
        }
        var created = await CliHarness.RunWithAdminKeyAsync(admin.Key, "admin", "audit", "--kind", "key.created", "--limit", "1", "--url", url);
        Assert.Contains($"key.created  key={user.Record.Id}", Assert.Single(created.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
        Assert.Contains("request  200  GET /v1/models", (await CliHarness.RunWithAdminKeyAsync(admin.Key, "admin", "audit", "--kind", "request", "--url", url)).Output);

        using var api = app.Client(admin.Key);
        Assert.Equal(HttpStatusCode.BadRequest, (await api.GetAsync("/admin/audit?limit=0")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await api.GetAsync("/admin/audit?limit=10001")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await api.GetAsync("/admin/audit?limit=10000")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await api.GetAsync("/admin/audit?limit=1")).StatusCode);
    }

    [Fact]
    public async Task RevokeAndRotateGoThroughTheServer()
    {
        var (app, url, admin, adminId) = await StartAsync();
        await using var _ = app;
        var victim = await app.CreateKeyAsync(new KeySpec { Name = "victim" });
        var rotating = await app.CreateKeyAsync(new KeySpec { Name = "rotating", Tenant = "team-a" });

        var revoked = await CliHarness.RunWithAdminKeyAsync(admin, "keys", "revoke", victim.Record.Id, "--url", url);
        Assert.True(revoked.ExitCode == 0, revoked.Error);
        Assert.Equal($"revoked {victim.Record.Id}", revoked.Output.Trim());
        Assert.True(await Eventually.WithinAsync(PropagationAllowance, async () =>
            (await app.Client(victim.Key).GetAsync("/v1/models")).StatusCode == HttpStatusCode.Unauthorized));

        var rotated = await CliHarness.RunWithAdminKeyAsync(admin, "keys", "rotate", rotating.Record.Id, "--json", "--url", url);
        Assert.True(rotated.ExitCode == 0, rotated.Error);
        using var json = JsonDocument.Parse(rotated.Output);
        var replacement = json.RootElement.GetProperty("key").GetString()!;
        Assert.Equal("team-a", json.RootElement.GetProperty("tenant").GetString());
        Assert.Equal(HttpStatusCode.OK, (await app.Client(replacement).GetAsync("/v1/models")).StatusCode);
        Assert.True(await Eventually.WithinAsync(PropagationAllowance, async () =>
            (await app.Client(rotating.Key).GetAsync("/v1/models")).StatusCode == HttpStatusCode.Unauthorized));
        Assert.Contains($"by admin key {adminId}", Assert.Single(await app.Get<SecurityStorage>().Audit.ReadRecentAsync(10, "key.rotated")).Detail);

        var text = await CliHarness.RunWithAdminKeyAsync(admin, "keys", "rotate", json.RootElement.GetProperty("id").GetString()!, "--url", url);
        Assert.True(text.ExitCode == 0, text.Error);
        Assert.StartsWith($"rotated {json.RootElement.GetProperty("id").GetString()} into API key ", text.Output);
        Assert.Contains("(name 'rotating', tenant 'team-a')", text.Output);

        var unknown = await CliHarness.RunWithAdminKeyAsync(admin, "keys", "revoke", "zzzzzzzzzzzz", "--url", url);
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("the server answered 404: no key with id 'zzzzzzzzzzzz'", unknown.Error);
    }

    [Fact]
    public async Task RotateWithGraceGoesThroughTheServerAndTheServerChecksTheGraceItself()
    {
        var (app, url, admin, adminId) = await StartAsync();
        await using var _ = app;
        var old = await app.CreateKeyAsync(new KeySpec { Name = "overlap" });

        var rotated = await CliHarness.RunWithAdminKeyAsync(admin, "keys", "rotate", old.Record.Id, "--grace", "2h", "--url", url);
        Assert.True(rotated.ExitCode == 0, rotated.Error);
        Assert.Matches($@"The old key {old.Record.Id} keeps working until \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(grace 2h\); then every server refuses it\.", rotated.Output);
        var audit = Assert.Single(await app.Get<SecurityStorage>().Audit.ReadRecentAsync(10, "key.rotated")).Detail;
        Assert.Contains($"by admin key {adminId}", audit);
        Assert.Contains("; grace 2h: the old key works until ", audit);
        // Once the server has reloaded the key, it still accepts it: its grace runs for two hours.
        Assert.True(await Eventually.WithinAsync(PropagationAllowance, async () =>
            (await app.Get<KeyCache>().GetAsync(old.Record.Id, default)).Record?.RetiresAt is not null));
        Assert.Equal(HttpStatusCode.OK, (await app.Client(old.Key).GetAsync("/v1/models")).StatusCode);

        // The admin API validates the grace as the CLI does (a client other than the CLI may send anything).
        var other = await app.CreateKeyAsync(new KeySpec { Name = "other" });
        using var client = app.Client(admin);
        foreach (var (grace, message) in new[]
                 {
                     ("45d", "grace must be at most 30d (720h); got '45d'"),
                     ("tomorrow", "grace must be 0 (revoke the old key at once) or a duration such as 90s, 30m, 24h or 7d; got 'tomorrow'"),
                 })
        {
            using var refused = await client.PostAsync($"/admin/keys/{other.Record.Id}/rotate",
                new StringContent($$"""{"grace":"{{grace}}"}""", System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Equal(message, JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("message").GetString());
        }
        using (var form = await client.PostAsync($"/admin/keys/{other.Record.Id}/rotate", new StringContent("grace=1h", System.Text.Encoding.UTF8, "application/x-www-form-urlencoded")))
        {
            // Read as every admin body is: a form is not JSON.
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, form.StatusCode);
            Assert.Contains("application/json", await form.Content.ReadAsStringAsync());
        }
        Assert.Equal(4, (await app.Get<SecurityStorage>().Keys.ListAsync()).Count); // ops, overlap, its successor, other: the refusals issued nothing

        var again = await CliHarness.RunWithAdminKeyAsync(admin, "keys", "rotate", old.Record.Id, "--grace", "1h", "--url", url);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains($"the server answered 409: key {old.Record.Id} was already rotated into ", again.Error);
    }

    [Fact]
    public async Task AnApiKeyIsRefusedByTheAdminApi()
    {
        var (app, url, _, _) = await StartAsync();
        await using var __ = app;
        var key = (await app.CreateKeyAsync(new KeySpec { Name = "plain" })).Key;
        var result = await CliHarness.RunWithAdminKeyAsync(key, "admin", "log-level", "debug", "--url", url);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("the server answered 403", result.Error);
        Assert.DoesNotContain(key, result.Error);
        Assert.Null(app.Get<RuntimeLogLevel>().Override);
    }

    [Theory]
    [InlineData("admin", "block-ip", "192.0.2.1")]
    [InlineData("admin", "unblock-ip", "192.0.2.1")]
    [InlineData("admin", "ip-blocks")]
    [InlineData("admin", "cancel", "req-1")]
    [InlineData("admin", "log-level", "debug")]
    [InlineData("keys", "revoke", "abcdefghijkm")]
    [InlineData("keys", "rotate", "abcdefghijkm")]
    public async Task EveryUrlVerbNeedsTheAdminKeyVariableAndRefusesAStoreFlagBesideIt(params string[] verb)
    {
        var withoutKey = await CliHarness.RunWithAdminKeyAsync(null, [.. verb, "--url", "http://127.0.0.1:9"]);
        Assert.Equal(1, withoutKey.ExitCode);
        Assert.Contains("set BULWARK_ADMIN_KEY to an admin key", withoutKey.Error);

        var both = await CliHarness.RunWithAdminKeyAsync("bwa_x", [.. verb, "--url", "http://127.0.0.1:9", "--data-dir", SecuredApp.NewDataDir()]);
        Assert.Equal(1, both.ExitCode);
        Assert.Contains("--url acts through a running server; --data-dir and --database act on the store directly", both.Error);

        var clear = await CliHarness.RunWithAdminKeyAsync("bwa_x", [.. verb, "--url", "http://192.0.2.10:8000"]);
        Assert.Equal(1, clear.ExitCode);
        Assert.Contains("plain HTTP to a non-loopback host", clear.Error);
    }
}
