using System.Net;
using System.Security.Cryptography;
using System.Text;
using Bulwark.Server.Audit;
using Bulwark.Server.Quotas;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Replicas;
using Bulwark.Server.Tests.Security;
using Bulwark.Server.Tests.Storage;
using Bulwark.Testing;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Bulwark.Server.Tests.Faults;

/// <summary>
/// A real <c>bulwark serve</c> (SQLite in its data directory, quotas in Redis) killed with SIGKILL
/// in the middle of a burst and started again on the same data directory. What is guaranteed
/// (docs/reliability.md): an audit record that reached the store, or the spool (fsynced), survives
/// and is stored once; what was still in memory (requests that ended within about one flush
/// interval, or during a write the kill cut short) is lost; the database is intact; the dead
/// process's concurrency leases, no longer renewed, free their slots within one lease lifetime.
/// </summary>
public sealed class KillDuringBurstTests(ITestOutputHelper output)
{
    private static readonly TimeSpan LeaseLifetime = TimeSpan.FromSeconds(6);

    [Fact]
    public async Task AfterSigkillTheSpoolIsReplayedTheDatabaseIsIntactAndTheDeadProcessesLeasesExpire()
    {
        var dataDir = Fixtures.NewTempDirectory("killed");
        var data = DataDirectory.Resolve(dataDir).EnsureCreated();
        var secret = RandomNumberGenerator.GetBytes(32);
        var prefix = $"bulwark-kill-{Guid.NewGuid():N}:";
        IssuedKey plain, busy, paired;
        await using (var storage = await SecurityStorage.OpenAsync(data, new StorageOptions()))
        {
            var issuer = new KeyIssuer(storage, new ApiKeyHasher(secret), TimeProvider.System);
            await issuer.CreateAsync(new KeySpec { Name = "ops", Tenant = "admin", IsAdmin = true }, "test"); // no first-start key printed
            plain = await issuer.CreateAsync(new KeySpec { Name = "spooled" }, "test");
            busy = await issuer.CreateAsync(new KeySpec { Name = "burst" }, "test");
            paired = await issuer.CreateAsync(new KeySpec { Name = "two-at-a-time", Limits = KeyLimits.None with { MaxConcurrent = 2 } }, "test");
        }
        var environment = new Dictionary<string, string>
        {
            ["Bulwark__Quotas__Redis"] = TestDatabases.RedisConfiguration,
            ["Bulwark__Quotas__RedisPrefix"] = prefix,
            ["Bulwark__Security__HmacSecret"] = Convert.ToBase64String(secret),
            ["Bulwark__Quotas__LeaseLifetime"] = LeaseLifetime.ToString(),
        };
        var database = Path.Combine(data.StatePath, SecurityStorage.SqliteFileName);
        var spool = Path.Combine(data.StatePath, AuditSpool.FileName);

        var serve = await TestServe.StartAsync(environment, dataDir);
        try
        {
            using var client = serve.Client(plain.Key);
            // 1. Written to the store: these survive anything that comes later.
            for (var i = 0; i < 20; i++) Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("v1/chat/completions", Chat(1))).StatusCode);
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(20), async () => (await CountAsync(database, plain)).Rows == 20),
                "the first 20 records did not reach the store");

            // 2. The store refuses this key's records (a trigger aborts their insert): they go to the spool, fsynced.
            await SqliteFile.ScalarAsync(database, $"CREATE TRIGGER refuse_spooled BEFORE INSERT ON audit_events WHEN NEW.key_id = '{plain.Record.Id}' " +
                                         "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
            for (var i = 0; i < 10; i++) Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("v1/chat/completions", Chat(1))).StatusCode);
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(30), () => Task.FromResult(SpooledLines(spool) == 10)),
                $"the 10 refused records were not spooled; the spool holds {SpooledLines(spool)} lines");

            // 3. Two long requests hold the paired key's two slots (greedy decoding of this prompt runs the whole
            //    1500 tokens, tens of seconds); a burst runs; SIGKILL while it does.
            using var pairedClient = serve.Client(paired.Key);
            var streams = new List<HttpResponseMessage>();
            for (var i = 0; i < 2; i++)
            {
                var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = Chat(1500, stream: true) };
                streams.Add(await pairedClient.SendAsync(request, HttpCompletionOption.ResponseHeadersRead));
                Assert.Equal(HttpStatusCode.OK, streams[^1].StatusCode);
            }
            // The burst's records are written to SQLite as it runs (the trigger spares them): the kill may cut a write.
            using var busyClient = serve.Client(busy.Key);
            var completed = 0;
            var burst = Enumerable.Range(0, 30).Select(_ => Task.Run(async () =>
            {
                using var response = await busyClient.PostAsync("v1/chat/completions", Chat(8));
                if (response.StatusCode == HttpStatusCode.OK) Interlocked.Increment(ref completed);
            })).ToList();
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(60), () => Task.FromResult(Volatile.Read(ref completed) >= 5)));
            await serve.DisposeAsync(); // SIGKILL, the whole process tree
            await Task.WhenAll(burst.Select(t => t.ContinueWith(_ => { })));
            foreach (var stream in streams) stream.Dispose();
            var completedBeforeKill = Volatile.Read(ref completed);

            // The database is intact, and the spool holds the 10 of step 2.
            Assert.Equal("ok", await SqliteFile.IntegrityCheckAsync(database));
            Assert.Equal(10, SpooledLines(spool));
            await SqliteFile.ScalarAsync(database, "DROP TRIGGER refuse_spooled");

            // Started again on the same data directory: the spool is replayed into the store, once.
            serve = await TestServe.StartAsync(environment, dataDir);
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(30), () => Task.FromResult(new FileInfo(spool).Length == 0)),
                "the spool was not replayed after the restart");
            Assert.Equal((30L, 30L, 30L), await CountAsync(database, plain));
            var (rows, distinct, usage) = await CountAsync(database, busy);
            output.WriteLine($"{completedBeforeKill} of 30 burst requests completed before the kill; {rows} of their records were stored");
            Assert.InRange(rows, 0, completedBeforeKill);
            Assert.Equal(rows, distinct);
            Assert.Equal(rows, usage);
            Assert.Equal("ok", await SqliteFile.IntegrityCheckAsync(database));

            // The dead process's two leases are no longer renewed: what is left of them expires within one
            // lifetime of the kill, and the paired key may run two requests again.
            await using var redis = await ConnectionMultiplexer.ConnectAsync(TestDatabases.RedisConfiguration);
            var leases = await redis.GetDatabase().SortedSetRangeByScoreWithScoresAsync($"{prefix}{{{paired.Record.Id}}}:c");
            var redisNow = await redis.GetServers()[0].TimeAsync();
            var nowMicros = (new DateTimeOffset(redisNow, TimeSpan.Zero) - DateTimeOffset.UnixEpoch).Ticks / 10;
            Assert.All(leases, l => Assert.True(l.Score - nowMicros <= LeaseLifetime.TotalMicroseconds, $"a dead lease expires {l.Score - nowMicros} µs from now"));
            using var pairedAgain = serve.Client(paired.Key);
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(30), async () =>
            {
                // One slot held by a stream still running, the other taken beside it.
                using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = Chat(1500, stream: true) };
                using var first = await pairedAgain.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                if (first.StatusCode != HttpStatusCode.OK) return false;
                using var second = await pairedAgain.PostAsync("v1/chat/completions", Chat(1));
                return second.StatusCode == HttpStatusCode.OK;
            }), "the dead process's leases still held the paired key's slots 30 s after the restart");
        }
        finally
        {
            await serve.DisposeAsync();
        }
    }

    private static StringContent Chat(int maxTokens, bool stream = false) => new(
        $$"""{"model":"bulwark-demo","messages":[{"role":"user","content":"hi"}],"max_tokens":{{maxTokens}},"temperature":0,"stream":{{(stream ? "true" : "false")}}}""",
        Encoding.UTF8, "application/json");

    private static int SpooledLines(string path) => File.Exists(path) ? File.ReadAllBytes(path).Count(b => b == '\n') : 0;

    /// <summary>Request records of <paramref name="key"/> served (200), their distinct ids, and the key's usage count.</summary>
    private static async Task<(long Rows, long Distinct, long Usage)> CountAsync(string database, IssuedKey key)
    {
        const string Served = "FROM audit_events WHERE key_id = $key AND kind = 'request' AND status = 200";
        async Task<long> Count(string sql) => Convert.ToInt64(await SqliteFile.ScalarAsync(database, sql, ("$key", key.Record.Id)));
        return (await Count("SELECT COUNT(*) " + Served), await Count("SELECT COUNT(DISTINCT record_id) " + Served),
            await Count("SELECT COALESCE(SUM(requests), 0) FROM usage_daily WHERE key_id = $key"));
    }
}
