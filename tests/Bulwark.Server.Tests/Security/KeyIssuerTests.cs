using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Storage;

namespace Bulwark.Server.Tests.Security;

public class KeyIssuerTests
{
    private static readonly byte[] Secret = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();

    [Theory]
    [InlineData(TestDatabases.Sqlite)]
    [InlineData(TestDatabases.Postgres)]
    public async Task CreatedKeyIsStoredOnlyAsItsHmacWithEveryField(string kind)
    {
        var (storage, _) = await TestDatabases.OpenAsync(kind);
        await using (storage)
        {
            var hasher = new ApiKeyHasher(Secret);
            var issuer = new KeyIssuer(storage, hasher, TimeProvider.System);
            var expires = DateTimeOffset.UtcNow.AddDays(3);
            var issued = await issuer.CreateAsync(new KeySpec
            {
                Name = "ci", Tenant = "acme", Models = ["m1", "m2"], Limits = new KeyLimits(60, 1000, 50000, 4), Priority = 7, ExpiresAt = expires,
            }, "test");

            var stored = await storage.Keys.FindAsync(issued.Record.Id);
            Assert.NotNull(stored);
            Assert.Equal(issued.Record with { ExpiresAt = stored.ExpiresAt, CreatedAt = stored.CreatedAt, Models = stored.Models }, stored);
            Assert.Equal(["m1", "m2"], stored.Models);
            Assert.Equal(expires.ToUnixTimeMilliseconds(), stored.ExpiresAt!.Value.ToUnixTimeMilliseconds());
            // The independent oracle for the stored hash is .NET's HMACSHA256 class.
            using var hmac = new System.Security.Cryptography.HMACSHA256(Secret);
            Assert.Equal(Convert.ToBase64String(hmac.ComputeHash(System.Text.Encoding.UTF8.GetBytes(issued.Key))), stored.Hash);
            Assert.DoesNotContain(issued.Key, await DumpAsync(storage));
        }
    }

    [Theory]
    [InlineData(TestDatabases.Sqlite)]
    [InlineData(TestDatabases.Postgres)]
    public async Task RotationIssuesANewKeyWithTheSameSettingsAndRevokesTheOld(string kind)
    {
        var (storage, _) = await TestDatabases.OpenAsync(kind);
        await using (storage)
        {
            var issuer = new KeyIssuer(storage, new ApiKeyHasher(Secret), TimeProvider.System);
            var first = await issuer.CreateAsync(new KeySpec { Name = "svc", Tenant = "t1", Limits = new KeyLimits(5, 6, 7, 8) }, "test");
            var maxSeq = await storage.Incidents.MaxSeqAsync();

            var second = await issuer.RotateAsync(first.Record.Id, "test");

            Assert.NotNull(second);
            Assert.NotEqual(first.Record.Id, second.Record.Id);
            Assert.Equal(first.Record.Limits, second.Record.Limits);
            var old = await storage.Keys.FindAsync(first.Record.Id);
            Assert.True(old!.Revoked);
            Assert.Equal(second.Record.Id, old.ReplacedBy);
            Assert.Contains(await storage.Incidents.ReadAfterAsync(maxSeq), e => e.Kind == IncidentKinds.KeyChanged && e.Subject == first.Record.Id);
            Assert.Null(await issuer.RotateAsync(first.Record.Id, "test"));
            var audit = await storage.Audit.ReadRecentAsync(10);
            Assert.Contains(audit, a => a.Kind == "key.rotated" && a.KeyId == first.Record.Id);
        }
    }

    private static readonly DateTimeOffset Now = new(2026, 3, 2, 9, 0, 0, TimeSpan.Zero);

    /// <summary>A fresh store with one key, <see cref="Old"/>, and the issuer and authenticator on a clock the test moves.</summary>
    private sealed record Rotation(SecurityStorage Storage, KeyIssuer Issuer, ApiKeyAuthenticator Auth, Quotas.ManualClock Clock, KeyCache Cache, IssuedKey Old)
        : IAsyncDisposable
    {
        public static async Task<Rotation> StartAsync(string kind = TestDatabases.Sqlite, KeySpec? old = null)
        {
            var (storage, _) = await TestDatabases.OpenAsync(kind);
            var clock = new Quotas.ManualClock(Now);
            var hasher = new ApiKeyHasher(Secret);
            var cache = new KeyCache(storage.Keys, clock, TimeSpan.FromMinutes(5));
            var issuer = new KeyIssuer(storage, hasher, clock);
            var issued = await issuer.CreateAsync(old ?? new KeySpec { Name = "svc" }, "test");
            return new Rotation(storage, issuer, new ApiKeyAuthenticator(cache, hasher, clock, null), clock, cache, issued);
        }

        public string Id => Old.Record.Id;

        /// <summary>Authenticates <paramref name="key"/> after dropping the cached entry of the old key, as the incident feed does on every replica.</summary>
        public async Task<AuthFailure> FailureAsync(string key, bool evict = false)
        {
            if (evict) Cache.Evict(Id);
            return (await Auth.AuthenticateAsync(key, default)).Failure;
        }

        public async Task<string?> RotationAuditAsync() => Assert.Single(await Storage.Audit.ReadRecentAsync(10, "key.rotated")).Detail;

        public ValueTask DisposeAsync() => Storage.DisposeAsync();
    }

    [Theory]
    [InlineData(TestDatabases.Sqlite)]
    [InlineData(TestDatabases.Postgres)]
    public async Task RotationWithGraceKeepsTheOldKeyWorkingUntilTheGraceEndsThenRefusesIt(string kind)
    {
        await using var r = await Rotation.StartAsync(kind, new KeySpec { Name = "svc", Limits = new KeyLimits(5, 6, 7, 8, 9, 10) });
        Assert.Equal(AuthFailure.None, await r.FailureAsync(r.Old.Key)); // cached and remembered
        var maxSeq = await r.Storage.Incidents.MaxSeqAsync();

        var rotated = await r.Issuer.RotateAsync(r.Id, "test", TimeSpan.FromHours(24));

        Assert.NotNull(rotated);
        Assert.Equal(r.Old.Record.Limits, rotated.Record.Limits);
        var stored = await r.Storage.Keys.FindAsync(r.Id);
        Assert.False(stored!.Revoked);
        Assert.Equal(rotated.Record.Id, stored.ReplacedBy);
        Assert.Equal(Now.AddHours(24), stored.RetiresAt);
        Assert.Equal(stored with { Models = rotated.Replaced!.Models }, rotated.Replaced);
        Assert.Contains(await r.Storage.Incidents.ReadAfterAsync(maxSeq), e => e.Kind == IncidentKinds.KeyChanged && e.Subject == r.Id);
        Assert.Equal($"by test; replaced by {rotated.Record.Id}; grace 24h: the old key works until 2026-03-03T09:00:00Z", await r.RotationAuditAsync());

        r.Clock.Advance(TimeSpan.FromHours(24) - TimeSpan.FromMilliseconds(1));
        Assert.Equal(AuthFailure.None, await r.FailureAsync(r.Old.Key, evict: true));
        Assert.Equal(AuthFailure.None, await r.FailureAsync(rotated.Key));
        r.Clock.Advance(TimeSpan.FromMilliseconds(1));
        // Still cached and its credential still remembered: the stored end of the grace refuses it all the same.
        Assert.True((await r.Cache.GetAsync(r.Id, default)).IsVerified(r.Old.Key));
        Assert.Equal(AuthFailure.Retired, await r.FailureAsync(r.Old.Key));
        Assert.Equal(AuthFailure.None, await r.FailureAsync(rotated.Key));
    }

    [Fact]
    public async Task RotationWithoutGraceRevokesAtOnceAndSaysSoInTheAudit()
    {
        await using var r = await Rotation.StartAsync();
        var rotated = await r.Issuer.RotateAsync(r.Id, "test");
        Assert.True(rotated!.Replaced!.Revoked);
        Assert.Null(rotated.Replaced.RetiresAt);
        Assert.EndsWith("; grace 0: revoked at once", await r.RotationAuditAsync());
        Assert.Equal(AuthFailure.Revoked, await r.FailureAsync(r.Old.Key, evict: true));
    }

    [Fact]
    public async Task TheGraceNeverOutlivesTheOldKeysOwnExpiry()
    {
        await using var r = await Rotation.StartAsync(old: new KeySpec { Name = "svc", ExpiresAt = Now.AddHours(2) });
        var rotated = await r.Issuer.RotateAsync(r.Id, "test", TimeSpan.FromDays(7));
        Assert.Equal(Now.AddHours(2), rotated!.Replaced!.RetiresAt);
        Assert.Equal(Now.AddHours(2), rotated.Record.ExpiresAt);
    }

    [Fact]
    public async Task AKeyBeingRetiredCannotBeRotatedAgainButRevokingItEndsItsGraceAtOnce()
    {
        await using var r = await Rotation.StartAsync();
        var rotated = await r.Issuer.RotateAsync(r.Id, "test", TimeSpan.FromHours(1));

        var again = await Assert.ThrowsAsync<KeyConflictException>(() => r.Issuer.RotateAsync(r.Id, "test", TimeSpan.FromHours(1)));
        Assert.Equal($"key {r.Id} was already rotated into {rotated!.Record.Id} and works until 2026-03-02T10:00:00Z: " +
                     $"rotate {rotated.Record.Id} instead, or revoke {r.Id} to end its grace now", again.Message);
        Assert.Equal(2, (await r.Storage.Keys.ListAsync()).Count);

        Assert.True(await r.Issuer.RevokeAsync(r.Id, "test"));
        Assert.Equal(AuthFailure.Revoked, await r.FailureAsync(r.Old.Key, evict: true));
        Assert.Equal(AuthFailure.None, await r.FailureAsync(rotated.Key));
    }

    [Theory]
    [InlineData(-1L, "grace must be between 0 and 30d; got -1s")]
    [InlineData(30L * 86400 + 1, "grace must be between 0 and 30d; got 2592001s")]
    public async Task AGraceOutsideItsBoundsIsRefusedAndChangesNothing(long seconds, string message)
    {
        await using var r = await Rotation.StartAsync();
        var e = await Assert.ThrowsAsync<ArgumentException>(() => r.Issuer.RotateAsync(r.Id, "test", TimeSpan.FromSeconds(seconds)));
        Assert.Equal(message, e.Message);
        Assert.Equal(r.Old.Record, Assert.Single(await r.Storage.Keys.ListAsync()) with { CreatedAt = r.Old.Record.CreatedAt, Models = r.Old.Record.Models });
        Assert.Empty(await r.Storage.Audit.ReadRecentAsync(10, "key.rotated"));
    }

    [Fact]
    public async Task FirstStartCreatesOneAdminKeyAndThenNoMore()
    {
        var (storage, _) = await TestDatabases.OpenAsync(TestDatabases.Sqlite);
        await using (storage)
        {
            var issuer = new KeyIssuer(storage, new ApiKeyHasher(Secret), TimeProvider.System);
            var first = await issuer.EnsureInitialAdminKeyAsync();
            Assert.NotNull(first);
            Assert.StartsWith(ApiKeyFormat.AdminPrefix, first.Key);
            Assert.Null(await issuer.EnsureInitialAdminKeyAsync());
            Assert.Single(await storage.Keys.ListAsync());
        }
    }

    [Theory]
    [InlineData(-1, 0, "rpm must be 0 (no limit) or more; got -1")]
    [InlineData(0, 10, "priority must be between 0 and 9; got 10")]
    public void InvalidSpecsAreRefusedWithFieldValueAndLimit(long rpm, int priority, string message)
    {
        var spec = new KeySpec { Name = "x", Limits = new KeyLimits(rpm, 0, 0, 0), Priority = priority };
        Assert.Equal(message, Assert.Throws<ArgumentException>(() => spec.Validate(DateTimeOffset.UtcNow)).Message);
    }

    [Theory]
    [InlineData(0, true)]
    [InlineData(9, true)]
    [InlineData(-1, false)]
    public void PriorityIsAcceptedFromZeroToNine(int priority, bool valid)
    {
        var spec = new KeySpec { Name = "x", Priority = priority };
        var error = Record.Exception(() => spec.Validate(DateTimeOffset.UtcNow));
        Assert.Equal(valid, error is null);
    }

    private static async Task<string> DumpAsync(SecurityStorage storage)
    {
        await using var connection = await storage.Database.OpenAsync();
        var text = new System.Text.StringBuilder();
        foreach (var table in new[] { "api_keys", "audit_events", "incident_events" })
        {
            await using var command = connection.Command($"SELECT * FROM {table}");
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
                for (var i = 0; i < reader.FieldCount; i++) text.Append(reader.GetValue(i)).Append('|');
        }
        return text.ToString();
    }
}
