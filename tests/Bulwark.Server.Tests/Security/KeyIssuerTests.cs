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
