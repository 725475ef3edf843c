using System.Net;
using System.Text.Json;
using Bulwark.Server.Incidents;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Security;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Tests.Cli;

[Collection("BULWARK_ADMIN_KEY")] // tests that set the environment variable run one at a time
public class AdminCommandTests
{
    /// <summary>
    /// The store is polled every 250 ms, so a change reaches a running server well within the 1 s
    /// the issue asks; the test allows 2 s because a loaded 2-core CI machine can delay the poll
    /// and the probing request themselves (the replica tests hold the 1 s line).
    /// </summary>
    internal static readonly TimeSpan PropagationAllowance = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task BlockIpRefusesTheAddressOnARunningServerWithinOneSecondAndUnblockLiftsIt()
    {
        var dir = SecuredApp.NewDataDir();
        await using var app = await SecuredApp.StartAsync(dir);
        var key = (await app.CreateKeyAsync(new KeySpec { Name = "k" })).Key;
        Assert.Equal(HttpStatusCode.OK, (await app.Client(key).GetAsync("/v1/models")).StatusCode);

        var blocked = await CliHarness.RunAsync("admin", "block-ip", "127.0.0.0/8", "--reason", "drill", "--data-dir", dir);
        Assert.True(blocked.ExitCode == 0, blocked.Error);
        Assert.Equal("blocked 127.0.0.0/8", blocked.Output.Trim());
        Assert.True(await Eventually.WithinAsync(PropagationAllowance, async () =>
            (await app.Client(key).GetAsync("/v1/models")).StatusCode == HttpStatusCode.Forbidden));
        // Blocked before authentication: even /health is refused.
        Assert.Equal(HttpStatusCode.Forbidden, (await app.Client().GetAsync("/health")).StatusCode);

        var list = await CliHarness.RunAsync("admin", "ip-blocks", "--json", "--data-dir", dir);
        using (var json = JsonDocument.Parse(list.Output))
        {
            var only = Assert.Single(json.RootElement.EnumerateArray());
            Assert.Equal("127.0.0.0/8", only.GetProperty("cidr").GetString());
            Assert.Equal("drill", only.GetProperty("reason").GetString());
        }

        var unblocked = await CliHarness.RunAsync("admin", "unblock-ip", "127.0.0.0/8", "--data-dir", dir);
        Assert.Equal(0, unblocked.ExitCode);
        Assert.True(await Eventually.WithinAsync(PropagationAllowance, async () =>
            (await app.Client(key).GetAsync("/v1/models")).StatusCode == HttpStatusCode.OK));

        var audit = await CliHarness.RunAsync("admin", "audit", "--kind", "ip.blocked", "--json", "--data-dir", dir);
        Assert.Contains("127.0.0.0/8", audit.Output);
        Assert.Contains("drill", audit.Output);
    }

    [Theory]
    [InlineData("300.1.1.1", "'300.1.1.1' is not an IP address or CIDR range")]
    [InlineData("10.0.0.0/33", "prefix length in '10.0.0.0/33' must be between 0 and 32")]
    [InlineData("2001:db8::/129", "prefix length in '2001:db8::/129' must be between 0 and 128")]
    public async Task BadRangesAreRefusedWithTheValue(string cidr, string message)
    {
        var result = await CliHarness.RunAsync("admin", "block-ip", cidr, "--data-dir", SecuredApp.NewDataDir());
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(message, result.Error);
    }

    [Theory]
    [InlineData("10.0.0.0/32")]
    [InlineData("2001:db8::/128")]
    [InlineData("0.0.0.0/0")]
    public async Task RangesAtThePrefixLimitsAreAccepted(string cidr)
    {
        var result = await CliHarness.RunAsync("admin", "block-ip", cidr, "--data-dir", SecuredApp.NewDataDir());
        Assert.True(result.ExitCode == 0, result.Error);
    }

    [Fact]
    public async Task UnblockingARangeThatIsNotBlockedFails()
    {
        var result = await CliHarness.RunAsync("admin", "unblock-ip", "192.0.2.0/24", "--data-dir", SecuredApp.NewDataDir());
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("'192.0.2.0/24' is not blocked", result.Error);
    }

    [Fact]
    public async Task RequestsListsAndCancelStopsAnActiveRequestOnTheServer()
    {
        var dir = SecuredApp.NewDataDir();
        await using var app = await SecuredApp.StartAsync(dir);
        var key = (await app.CreateKeyAsync(new KeySpec { Name = "slow" })).Key;
        var admin = (await app.CreateKeyAsync(new KeySpec { Name = "ops", IsAdmin = true })).Key;
        var pending = app.Client(key).GetAsync("/v1/wait");
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(5), () => Task.FromResult(app.Get<ActiveRequests>().Count == 1)));

        var listed = await CliHarness.RunWithAdminKeyAsync(admin, "admin", "requests", "--url", app.Address.ToString(), "--json");
        Assert.True(listed.ExitCode == 0, listed.Error);
        using var json = JsonDocument.Parse(listed.Output);
        // The listing request itself is active too while it is served.
        var row = Assert.Single(json.RootElement.GetProperty("data").EnumerateArray(), r => r.GetProperty("route").GetString() == "/v1/wait");
        var id = row.GetProperty("id").GetString()!;

        var cancelled = await CliHarness.RunAsync("admin", "cancel", id, "--data-dir", dir);
        Assert.Equal(0, cancelled.ExitCode);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => pending.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(0, app.Get<ActiveRequests>().Count);
    }

    [Theory]
    [InlineData("http://192.0.2.10:8000", "plain HTTP to a non-loopback host")]
    [InlineData("ftp://127.0.0.1", "--url must be an http or https URL")]
    public async Task RequestsRefusesToSendTheAdminKeyInClearOrToOddUrls(string url, string message)
    {
        var result = await CliHarness.RunAsync("admin", "requests", "--url", url);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(message, result.Error);
    }

    [Fact]
    public async Task LogLevelReachesARunningServerAndIsAudited()
    {
        var dir = SecuredApp.NewDataDir();
        await using var app = await SecuredApp.StartAsync(dir);
        var result = await CliHarness.RunAsync("admin", "log-level", "warning", "--data-dir", dir);
        Assert.True(result.ExitCode == 0, result.Error);
        Assert.True(await Eventually.WithinAsync(PropagationAllowance, () => Task.FromResult(app.Get<RuntimeLogLevel>().Override == LogLevel.Warning)));
        Assert.Equal(0, (await CliHarness.RunAsync("admin", "log-level", "default", "--data-dir", dir)).ExitCode);
        Assert.True(await Eventually.WithinAsync(PropagationAllowance, () => Task.FromResult(app.Get<RuntimeLogLevel>().Override is null)));

        var bad = await CliHarness.RunAsync("admin", "log-level", "loud", "--data-dir", dir);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("got 'loud'", bad.Error);
        var audited = await app.Get<SecurityStorage>().Audit.ReadRecentAsync(10, "log.level");
        Assert.Equal(2, audited.Count);
    }

    [Fact]
    public async Task IsolateAndResumeThroughTheStoreReachEveryRunningServerAndAreAudited()
    {
        var dir = SecuredApp.NewDataDir();
        await using var app = await SecuredApp.StartAsync(dir);
        var isolation = app.Get<Bulwark.Server.Admission.ReplicaIsolation>();
        var noTarget = await CliHarness.RunAsync("admin", "isolate", "--data-dir", dir);
        Assert.Equal(1, noTarget.ExitCode);
        Assert.Contains("name the replica with --replica ID or give --all-replicas", noTarget.Error);
        var both = await CliHarness.RunAsync("admin", "isolate", "--all-replicas", "--replica", "x", "--data-dir", dir);
        Assert.Equal(1, both.ExitCode);

        var isolated = await CliHarness.RunAsync("admin", "isolate", "--all-replicas", "--reason", "drill", "--data-dir", dir);
        Assert.True(isolated.ExitCode == 0, isolated.Error);
        Assert.Contains("isolation sent to every replica", isolated.Output);
        Assert.True(await Eventually.WithinAsync(PropagationAllowance, () => Task.FromResult(isolation.Current?.Reason == "drill")));
        Assert.Equal(0, (await CliHarness.RunAsync("admin", "resume", "--all-replicas", "--data-dir", dir)).ExitCode);
        Assert.True(await Eventually.WithinAsync(PropagationAllowance, () => Task.FromResult(isolation.Current is null)));
        // An order naming another replica leaves this one alone.
        // An order naming another replica leaves this one alone: a later event (the log level) is applied, and the isolation was not.
        Assert.Equal(0, (await CliHarness.RunAsync("admin", "isolate", "--replica", "elsewhere/1/abc", "--data-dir", dir)).ExitCode);
        Assert.Equal(0, (await CliHarness.RunAsync("admin", "log-level", "warning", "--data-dir", dir)).ExitCode);
        Assert.True(await Eventually.WithinAsync(PropagationAllowance, () => Task.FromResult(app.Get<RuntimeLogLevel>().Override == LogLevel.Warning)));
        Assert.Null(isolation.Current);
        Assert.Equal(2, (await app.Get<SecurityStorage>().Audit.ReadRecentAsync(10, "replica.isolated")).Count);
        Assert.Single(await app.Get<SecurityStorage>().Audit.ReadRecentAsync(10, "replica.resumed"));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("10001")]
    public async Task AuditLimitOutsideItsRangeIsRefused(string limit)
    {
        var result = await CliHarness.RunAsync("admin", "audit", "--limit", limit, "--data-dir", SecuredApp.NewDataDir());
        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"--limit must be between 1 and 10000; got {limit}", result.Error);
    }
}
