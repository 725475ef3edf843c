using System.Net.Http.Json;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Bulwark.Server.Incidents;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Storage;

namespace Bulwark.Server.Tests.Security;

/// <summary>
/// Two replicas of the security front (two apps, each with its own caches, Redis connection and
/// database pool, as two processes would have) sharing one store and one Redis.
/// </summary>
public class ReplicaTests
{
    [Theory]
    [InlineData(TestDatabases.Postgres)]
    [InlineData(TestDatabases.Sqlite)]
    public async Task AKeyRevokedThroughReplicaAIsRefusedByReplicaBWithinOneSecond(string store)
    {
        var (a, b) = await StartPairAsync(store);
        await using (a)
        await using (b)
        {
            var admin = (await a.CreateKeyAsync(new KeySpec { Name = "ops", IsAdmin = true })).Key;
            var key = await a.CreateKeyAsync(new KeySpec { Name = "victim" });
            // Both replicas have the key cached as valid.
            Assert.Equal(HttpStatusCode.OK, (await a.Client(key.Key).GetAsync("/v1/models")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await b.Client(key.Key).GetAsync("/v1/models")).StatusCode);

            using var revoke = await a.Client(admin).PostAsync($"/admin/keys/{key.Record.Id}/revoke", null);
            Assert.Equal(HttpStatusCode.NoContent, revoke.StatusCode);
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(1), async () =>
                (await b.Client(key.Key).GetAsync("/v1/models")).StatusCode == HttpStatusCode.Unauthorized),
                "replica B still accepted the key a second after replica A revoked it");
        }
    }

    /// <summary>
    /// Rotation with overlap across replicas sharing one store and one clock: both accept the old key
    /// (cached before the rotation) through the grace, and both refuse it the moment the grace ends,
    /// with no poll or timer in between, because each request checks the stored end of the grace.
    /// </summary>
    [Theory]
    [InlineData(TestDatabases.Sqlite)]
    [InlineData(TestDatabases.Postgres)]
    public async Task AKeyRotatedWithGraceWorksOnEveryReplicaUntilTheGraceEndsThenOnNone(string store)
    {
        var clock = new Quotas.ManualClock(new DateTimeOffset(2026, 3, 2, 9, 0, 0, TimeSpan.Zero));
        var (a, b) = await StartPairAsync(store, clock: clock);
        await using (a)
        await using (b)
        {
            var admin = (await a.CreateKeyAsync(new KeySpec { Name = "ops", IsAdmin = true })).Key;
            var old = await a.CreateKeyAsync(new KeySpec { Name = "svc" });
            foreach (var replica in new[] { a, b }) Assert.Equal(HttpStatusCode.OK, (await replica.Client(old.Key).GetAsync("/v1/models")).StatusCode);

            using var rotate = await a.Client(admin).PostAsJsonAsync($"/admin/keys/{old.Record.Id}/rotate", new { grace = "24h" });
            Assert.Equal(HttpStatusCode.OK, rotate.StatusCode);
            var body = await rotate.Content.ReadFromJsonAsync<JsonElement>();
            var fresh = body.GetProperty("key").GetString()!;
            var end = new DateTimeOffset(2026, 3, 3, 9, 0, 0, TimeSpan.Zero);
            Assert.Equal(old.Record.Id, body.GetProperty("rotated_from").GetProperty("id").GetString());
            Assert.Equal(end, body.GetProperty("rotated_from").GetProperty("retires_at").GetDateTimeOffset());
            // Each replica drops its cached copy through the incident log and reloads the key with the end of its grace.
            foreach (var replica in new[] { a, b })
                Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(2), async () =>
                    (await replica.Get<KeyCache>().GetAsync(old.Record.Id, default)).Record?.RetiresAt == end), "a replica still holds the key as it was before the rotation");

            clock.Advance(TimeSpan.FromHours(24) - TimeSpan.FromSeconds(1));
            foreach (var replica in new[] { a, b })
            {
                Assert.Equal(HttpStatusCode.OK, (await replica.Client(old.Key).GetAsync("/v1/models")).StatusCode);
                Assert.Equal(HttpStatusCode.OK, (await replica.Client(fresh).GetAsync("/v1/models")).StatusCode);
            }

            clock.Advance(TimeSpan.FromSeconds(1));
            foreach (var replica in new[] { a, b })
            {
                Assert.Equal(HttpStatusCode.Unauthorized, (await replica.Client(old.Key).GetAsync("/v1/models")).StatusCode);
                Assert.Equal(HttpStatusCode.OK, (await replica.Client(fresh).GetAsync("/v1/models")).StatusCode);
            }
            // Both refusals are audited with their own reason, told apart from revoked and expired keys.
            var storage = a.Get<SecurityStorage>();
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(5), async () =>
                (await storage.Audit.ReadRecentAsync(50, AuditRecord.RequestKind)).Count(r => r.Reason == "invalid_key:retired" && r.Status == 401) == 2),
                "the two refusals of the retired key were not audited as invalid_key:retired");
        }
    }

    [Fact]
    public async Task ARequestCancelledThroughReplicaAStopsOnReplicaBWithinOneSecond()
    {
        var (a, b) = await StartPairAsync(TestDatabases.Postgres);
        await using (a)
        await using (b)
        {
            var admin = (await a.CreateKeyAsync(new KeySpec { Name = "ops", IsAdmin = true })).Key;
            var key = (await a.CreateKeyAsync(new KeySpec { Name = "slow" })).Key;
            using var client = b.Client(key);
            var pending = client.GetAsync("/v1/wait");
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(5), () => Task.FromResult(b.Get<ActiveRequests>().Count == 1)));
            var id = b.Get<ActiveRequests>().List().Single().RequestId;
            // Replica A does not serve it, yet its admin API lists it, with the replica that does, within a publication period or two.
            Assert.Equal(0, a.Get<ActiveRequests>().Count);
            using var adminOnA = a.Client(admin);
            JsonElement? listed = null;
            Assert.True(await Eventually.WithinAsync(ActiveRequestPublisher.Period * 3, async () =>
            {
                var rows = (await adminOnA.GetFromJsonAsync<JsonElement>("/admin/requests")).GetProperty("data");
                listed = rows.EnumerateArray().Where(r => r.GetProperty("id").GetString() == id).Select(r => (JsonElement?)r).FirstOrDefault();
                return listed is not null;
            }), "replica A's admin API did not list the request replica B serves");
            Assert.Equal(b.Get<ActiveRequestPublisher>().ReplicaId, listed!.Value.GetProperty("replica").GetString());
            Assert.Equal("/v1/wait", listed.Value.GetProperty("route").GetString());

            using var cancel = await a.Client(admin).PostAsync($"/admin/requests/{id}/cancel", null);
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
            await Assert.ThrowsAnyAsync<HttpRequestException>(() => pending.WaitAsync(TimeSpan.FromSeconds(1)));
            Assert.Equal(0, b.Get<ActiveRequests>().Count);
            // Once B has published again, the request is gone from A's listing too.
            Assert.True(await Eventually.WithinAsync(ActiveRequestPublisher.Period * 3, async () =>
                !(await adminOnA.GetFromJsonAsync<JsonElement>("/admin/requests")).GetProperty("data").EnumerateArray().Any(r => r.GetProperty("id").GetString() == id)));
        }
    }

    [Fact]
    public async Task BlocksAndLogLevelSetThroughReplicaAReachReplicaBWithinOneSecond()
    {
        var (a, b) = await StartPairAsync(TestDatabases.Postgres);
        await using (a)
        await using (b)
        {
            using var admin = a.Client((await a.CreateKeyAsync(new KeySpec { Name = "ops", IsAdmin = true })).Key);
            var outsider = IPAddress.Parse("198.51.100.9");
            using (var block = await admin.PostAsJsonAsync("/admin/ip-blocks", new { cidr = "198.51.100.0/24", reason = "drill" }))
                Assert.Equal(HttpStatusCode.OK, block.StatusCode);
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(1), () => Task.FromResult(b.Get<IpBlockList>().IsBlocked(outsider))),
                "replica B did not block the range a second after replica A blocked it");
            using (var unblock = await admin.PostAsJsonAsync("/admin/ip-blocks/remove", new { cidr = "198.51.100.0/24" }))
                Assert.Equal(HttpStatusCode.NoContent, unblock.StatusCode);
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(1), () => Task.FromResult(!b.Get<IpBlockList>().IsBlocked(outsider))),
                "replica B still blocked the range a second after replica A unblocked it");

            using (var level = await admin.PutAsJsonAsync("/admin/log-level", new { level = "Debug" }))
                Assert.Equal(HttpStatusCode.NoContent, level.StatusCode);
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(1), () =>
                Task.FromResult(b.Get<RuntimeLogLevel>().Override == Microsoft.Extensions.Logging.LogLevel.Debug)),
                "replica B did not take the log level a second after replica A set it");
        }
    }

    [Theory]
    [InlineData(5, 7)]
    [InlineData(10, 10)]
    public async Task ABurstAcrossTwoReplicasWithRedisAdmitsExactlyTheRequestsPerMinute(int limit, int extra)
    {
        var (a, b) = await StartPairAsync(TestDatabases.Postgres, redis: true);
        await using (a)
        await using (b)
        {
            var key = (await a.CreateKeyAsync(new KeySpec { Name = "burst", Limits = new KeyLimits(limit, 0, 0, 0) })).Key;
            // GCRA refills one request every 60/limit s (6 s at 10/min): the burst is exact well within that.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var statuses = await BurstAsync(a, b, key, limit + extra, _ => SecuredApp.Chat("m1"));
            var (least, most) = GcraBurst.Admissible(limit, clock.Elapsed);
            Assert.True(statuses.All(s => s.Status is HttpStatusCode.OK or HttpStatusCode.TooManyRequests), Describe(statuses));
            var admitted = statuses.Count(s => s.Status == HttpStatusCode.OK);
            Assert.True(admitted >= least && admitted <= most, $"admitted {admitted} of {limit + extra} in {clock.Elapsed.TotalSeconds:F1} s (allowed {least}..{most})");
            Assert.Equal(limit + extra - admitted, statuses.Count(s => s.Status == HttpStatusCode.TooManyRequests));
            Assert.All(statuses.Where(s => s.Status == HttpStatusCode.TooManyRequests), s => Assert.True(s.RetryAfter >= 1));
        }
    }

    [Fact]
    public async Task TokenReservationsAcrossTwoReplicasNeverExceedTheTokensPerMinute()
    {
        var (a, b) = await StartPairAsync(TestDatabases.Postgres, redis: true);
        await using (a)
        await using (b)
        {
            // 1500 tokens reserved per request (prompt 500 + max_tokens 1000) against 6000 per minute:
            // exactly 4 fit; a fifth would need 15 s of refill.
            var key = (await a.CreateKeyAsync(new KeySpec { Name = "tokens", Limits = new KeyLimits(0, 6000, 0, 0) })).Key;
            var statuses = await BurstAsync(a, b, key, 10, _ => SecuredApp.Chat("m1", promptTokens: 500, maxTokens: 1000));
            Assert.True(statuses.All(s => s.Status is HttpStatusCode.OK or HttpStatusCode.TooManyRequests), Describe(statuses));
            Assert.Equal(4, statuses.Count(s => s.Status == HttpStatusCode.OK));
            Assert.All(statuses.Where(s => s.Status == HttpStatusCode.TooManyRequests), s => Assert.Equal("tokens", s.Code));
        }
    }

    [Fact]
    public async Task SettlementOnOneReplicaRefundsUnusedTokensForTheOther()
    {
        var (a, b) = await StartPairAsync(TestDatabases.Postgres, redis: true);
        await using (a)
        await using (b)
        {
            // 6000 tokens per minute refill 100 per second; the margins below hold for 20 s or more.
            var key = (await a.CreateKeyAsync(new KeySpec { Name = "refund", Limits = new KeyLimits(0, 6000, 0, 0) })).Key;
            // Reserves 1 + 5000 but generates nothing: settles at 1 token, refunding 5000.
            using var first = await a.Client(key).PostAsync("/v1/chat/completions", SecuredApp.Chat("m1", 1, 5000, completionTokens: 0));
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            // Without the refund about 1000 tokens would be left, not 5001.
            using var second = await b.Client(key).PostAsync("/v1/chat/completions", SecuredApp.Chat("m1", 1, 5000, completionTokens: 5000));
            Assert.Equal(HttpStatusCode.OK, second.StatusCode);
            // About 5002 are charged now: 3000 more do not fit on either replica.
            using var tooMany = await a.Client(key).PostAsync("/v1/chat/completions", SecuredApp.Chat("m1", 1, 3000));
            Assert.Equal(HttpStatusCode.TooManyRequests, tooMany.StatusCode);
            Assert.InRange(long.Parse(tooMany.Headers.GetValues("x-ratelimit-remaining-tokens").Single()), 998, 3000);
        }
    }

    private static string Describe(List<(HttpStatusCode Status, long RetryAfter, string? Code)> statuses) =>
        "statuses: " + string.Join(", ", statuses.Select(s => $"{(int)s.Status}{(s.Code is null ? "" : ":" + s.Code)}"));

    private static async Task<List<(HttpStatusCode Status, long RetryAfter, string? Code)>> BurstAsync(
        SecuredApp a, SecuredApp b, string key, int count, Func<int, HttpContent> body)
    {
        using var clientA = a.Client(key);
        using var clientB = b.Client(key);
        // An awaited gate, not a blocking one: blocked pool threads would let the thread pool start the
        // requests one by one, seconds apart on two cores, and the burst would no longer be a burst.
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var tasks = Enumerable.Range(0, count).Select(i => Task.Run(async () =>
        {
            await start.Task;
            using var response = await (i % 2 == 0 ? clientA : clientB).PostAsync("/v1/chat/completions", body(i));
            var retry = response.Headers.RetryAfter?.Delta is { } d ? (long)d.TotalSeconds : 0;
            string? code = null;
            if (response.StatusCode != HttpStatusCode.OK)
            {
                var text = await response.Content.ReadAsStringAsync();
                code = text.StartsWith('{')
                    ? System.Text.Json.JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("code").GetString()
                    : "(no error body) " + string.Join(" | ", a.Logs.Lines.Concat(b.Logs.Lines).Where(l => l.StartsWith("Error", StringComparison.Ordinal) || l.StartsWith("Critical", StringComparison.Ordinal)));
            }
            return (response.StatusCode, retry, code);
        })).ToList();
        start.SetResult();
        return [.. await Task.WhenAll(tasks)];
    }

    /// <summary>Two replicas over one store (a PostgreSQL schema, or one SQLite data directory) and, optionally, one Redis.</summary>
    internal static async Task<(SecuredApp A, SecuredApp B)> StartPairAsync(string store, bool redis = false, TimeProvider? clock = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Bulwark:Security:HmacSecret"] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
        };
        var options = TestDatabases.Options(store);
        if (options.Postgres is not null)
        {
            settings["Bulwark:Storage:Postgres"] = options.Postgres;
            settings["Bulwark:Storage:Schema"] = options.Schema;
        }
        if (redis)
        {
            settings["Bulwark:Quotas:Redis"] = TestDatabases.RedisConfiguration;
            settings["Bulwark:Quotas:RedisPrefix"] = $"bulwark-test-{Guid.NewGuid():N}:";
        }
        var dir = SecuredApp.NewDataDir("replicas");
        var a = await SecuredApp.StartAsync(dir, settings, clock: clock);
        // Replica B's data directory is its own unless the store is the SQLite file in A's.
        var b = await SecuredApp.StartAsync(store == TestDatabases.Sqlite ? dir : SecuredApp.NewDataDir("replica-b"), settings, clock: clock);
        return (a, b);
    }
}
