using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Bulwark.Server.Audit;
using Bulwark.Server.Incidents;
using Bulwark.Server.Observability;
using Bulwark.Server.Quotas;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Security;
using Bulwark.Server.Tests.Storage;

namespace Bulwark.Server.Tests.Faults;

/// <summary>
/// Real servers (the security front with its quota stage) on a private Redis the test kills mid-burst
/// and starts again, in real time: what clients see under each <c>Bulwark:Quotas:WhenRedisDown</c>.
/// </summary>
public sealed class RedisOutageServerTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task ABurstAcrossARedisRestartOnTwoReplicasIsServedFromSharesAndStaysWithinTheLimit()
    {
        await using var redis = await PrivateRedis.StartNewAsync();
        var storage = TestDatabases.Options(TestDatabases.Postgres);
        var settings = new Dictionary<string, string?>
        {
            ["Bulwark:Quotas:Redis"] = redis.Configuration,
            ["Bulwark:Quotas:WhenRedisDown"] = "local",
            ["Bulwark:Storage:Postgres"] = storage.Postgres,
            ["Bulwark:Storage:Schema"] = storage.Schema,
            ["Bulwark:Security:HmacSecret"] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
        };
        await using var a = await SecuredApp.StartAsync(SecuredApp.NewDataDir("a"), settings);
        await using var b = await SecuredApp.StartAsync(SecuredApp.NewDataDir("b"), settings);
        const int limit = 40;
        var key = await a.CreateKeyAsync(new KeySpec { Name = "burst", Limits = KeyLimits.None with { RequestsPerMinute = limit } });
        using var toA = a.Client(key.Key);
        using var toB = b.Client(key.Key);
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(20), () =>
            Task.FromResult(a.Get<ActiveRequestPublisher>().LiveReplicas == 2 && b.Get<ActiveRequestPublisher>().LiveReplicas == 2)),
            "the replicas did not count each other");

        var clock = Stopwatch.StartNew();
        var admitted = 0;
        var sent = 0;
        async Task<HttpStatusCode> SendAsync()
        {
            var response = await (sent++ % 2 == 0 ? toA : toB).PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"));
            if (response.StatusCode == HttpStatusCode.OK) admitted++;
            return response.StatusCode;
        }

        for (var i = 0; i < 25; i++) Assert.Equal(HttpStatusCode.OK, await SendAsync());
        redis.Kill();
        // Served, or refused as over the share: never a failure, never a wait for Redis.
        var servedDuringOutage = 0;
        var deadline = Stopwatch.StartNew();
        while (servedDuringOutage < 2)
        {
            var status = await SendAsync();
            Assert.True(status is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, $"got {(int)status} while Redis was down");
            if (status == HttpStatusCode.OK) servedDuringOutage++;
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30), "no request was served from the local shares within 30 s");
            if (status != HttpStatusCode.OK) await Task.Delay(50);
        }
        Assert.All(new[] { a, b }, s => Assert.Equal(1, s.Get<ServerMetrics>().QuotaStoreMode));
        await redis.StartAsync();
        var stores = new[] { a, b }.Select(s => (ResilientQuotaStore)s.Get<IQuotaStore>()).ToArray();
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(30), () => Task.FromResult(stores.All(s => s.IsShared))),
            "a replica did not return to Redis within 30 s of its restart");
        for (var i = 0; i < limit; i++) Assert.True(await SendAsync() is HttpStatusCode.OK or HttpStatusCode.TooManyRequests);

        // One bucket allows the limit plus what a minute refills in the time the test took.
        var allowed = limit + (int)Math.Ceiling(limit * clock.Elapsed.TotalMinutes);
        output.WriteLine($"admitted {admitted} of {sent} requests in {clock.Elapsed.TotalSeconds:0.0} s (one bucket allows {allowed}); {servedDuringOutage} served during the outage");
        Assert.True(admitted <= allowed, $"admitted {admitted} of {sent} in {clock.Elapsed.TotalSeconds:0.0} s; one bucket of {limit}/min allows {allowed}");
        Assert.All(new[] { a, b }, s => Assert.Equal(0, s.Get<ServerMetrics>().QuotaStoreMode));
        var logs = a.Logs.Lines.Concat(b.Logs.Lines).ToList();
        Assert.Contains(logs, l => l.Contains("cannot be reached", StringComparison.Ordinal) && l.Contains("share", StringComparison.Ordinal));
        Assert.Contains(logs, l => l.Contains("answers again", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ByDefaultAKeyWithLimitsIsRefusedWith503WhileRedisIsDownAndAKeyWithoutIsServed()
    {
        await using var redis = await PrivateRedis.StartNewAsync();
        await using var app = await SecuredApp.StartAsync(SecuredApp.NewDataDir(), new Dictionary<string, string?> { ["Bulwark:Quotas:Redis"] = redis.Configuration });
        var limited = await app.CreateKeyAsync(new KeySpec { Name = "limited", Limits = KeyLimits.None with { RequestsPerMinute = 1000 } });
        var open = await app.CreateKeyAsync(new KeySpec { Name = "open" });
        using var toLimited = app.Client(limited.Key);
        using var toOpen = app.Client(open.Key);
        Assert.Equal(HttpStatusCode.OK, (await toLimited.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"))).StatusCode);

        redis.Kill();
        using var refused = await toLimited.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        using (var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()))
            Assert.Equal("quota_store_unavailable", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("1", refused.Headers.GetValues("Retry-After").Single());
        Assert.Equal(HttpStatusCode.OK, (await toOpen.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"))).StatusCode);
        Assert.Equal(2, app.Get<ServerMetrics>().QuotaStoreMode);
        Assert.Contains(app.Logs.Lines, l => l.StartsWith("Error", StringComparison.Ordinal) && l.Contains("WhenRedisDown=refuse", StringComparison.Ordinal));

        await redis.StartAsync();
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(30), async () =>
        {
            using var response = await toLimited.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"));
            return response.StatusCode == HttpStatusCode.OK;
        }), "the limited key was not served within 30 s of Redis's restart");
        Assert.Equal(0, app.Get<ServerMetrics>().QuotaStoreMode);

        // The refusal is audited with its reason, and not counted as a served request.
        await app.Get<AuditWriter>().FlushAsync();
        var records = await app.Get<SecurityStorage>().Audit.ReadRecentAsync(50);
        Assert.Contains(records, r => r.KeyId == limited.Record.Id && r.Status == 503 && r.Reason == "quota_store_unavailable");
    }
}
