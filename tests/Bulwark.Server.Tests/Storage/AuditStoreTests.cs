using Bulwark.Server.Audit;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;

namespace Bulwark.Server.Tests.Storage;

public class AuditStoreTests
{
    private static readonly DateTimeOffset Day1 = new(2026, 3, 1, 23, 59, 0, TimeSpan.Zero);

    private static AuditRecord Request(string key, DateTimeOffset at, long prompt, long completion, string? reason = null) => new()
    {
        At = at, Kind = AuditRecord.RequestKind, KeyId = key, Status = reason is null ? 200 : 429, PromptTokens = prompt, CompletionTokens = completion, Reason = reason,
    };

    [Theory]
    [InlineData(TestDatabases.Sqlite)]
    [InlineData(TestDatabases.Postgres)]
    public async Task ABatchAddsItsAdmittedRequestsToEachKeysDailyUsage(string kind)
    {
        var (storage, _) = await TestDatabases.OpenAsync(kind);
        await using (storage)
        {
            var day2 = Day1.AddMinutes(2);
            await storage.Audit.WriteAsync(
            [
                Request("a", Day1, 10, 1), Request("a", Day1, 20, 2), Request("a", day2, 5, 5), Request("b", Day1, 7, 0),
                Request("a", Day1, 100, 100, reason: "rate_limit:tokens"), // refused: audited, not usage
                new AuditRecord { At = Day1, Kind = "key.created", KeyId = "a" },
            ]);
            await storage.Audit.WriteAsync([Request("a", Day1, 1, 1)]);

            Assert.Equal(new DailyUsage("a", "2026-03-01", 3, 31, 4), await storage.Audit.UsageAsync("a", "2026-03-01"));
            Assert.Equal(new DailyUsage("a", "2026-03-02", 1, 5, 5), await storage.Audit.UsageAsync("a", "2026-03-02"));
            Assert.Equal(new DailyUsage("b", "2026-03-01", 1, 7, 0), await storage.Audit.UsageAsync("b", "2026-03-01"));
            Assert.Equal(7, (await storage.Audit.ReadRecentAsync(100)).Count);
        }
    }

    [Theory]
    [InlineData(TestDatabases.Sqlite)]
    [InlineData(TestDatabases.Postgres)]
    public async Task LastUsedTimesMoveForwardOnlyAndAMaskedKeyNeverReachesTheLog(string kind)
    {
        var (storage, _) = await TestDatabases.OpenAsync(kind);
        await using (storage)
        {
            await storage.Keys.InsertAsync(new ApiKeyRecord("k1", "h", false, "t", "n", [], KeyLimits.None, 0, null, false, Day1, null, null));
            var pasted = "bwk_abcdefghijkl_" + new string('s', 52);
            await storage.Audit.WriteAsync([Request("k1", Day1, 1, 1) with { Route = "POST /v1/" + pasted }], [new("k1", Day1.AddHours(1))]);
            await storage.Audit.WriteAsync([], [new("k1", Day1)]); // an older time from a slower replica
            Assert.Equal(Day1.AddHours(1), (await storage.Keys.FindAsync("k1"))!.LastUsedAt);
            var route = Assert.Single(await storage.Audit.ReadRecentAsync(10)).Route!;
            Assert.DoesNotContain(pasted, route);
            Assert.StartsWith("POST /v1/bwk_abcdefghijkl_", route);
        }
    }
}
