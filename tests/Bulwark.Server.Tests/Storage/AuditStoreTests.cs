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
    public async Task SearchMatchesEveryFilterAndPagesNewestFirstAsFilteringTheWholeLogDoes(string kind)
    {
        var (storage, _) = await TestDatabases.OpenAsync(kind);
        await using (storage)
        {
            var random = new Random(22);
            string Pick(params string[] options) => options[random.Next(options.Length)];
            await storage.Audit.WriteAsync(Enumerable.Range(0, 120).Select(i => new AuditRecord
            {
                At = Day1.AddSeconds(i), Kind = Pick("request", "key.created", "ip.blocked"), KeyId = Pick("k1", "k2", "k3"), Tenant = Pick("t1", "t2"),
                ClientIp = Pick("127.0.0.1", "10.0.0.1"), Status = random.Next(2) == 0 ? 200 : 404, Detail = $"record {i}",
                RequestId = $"req-{i % 40}",
            }).ToList());
            // The slow twin: the whole log, newest first, filtered in memory.
            var all = await storage.Audit.ReadRecentAsync(1000);
            Assert.Equal(120, all.Count);
            var queries = new[]
            {
                new AuditQuery(), new AuditQuery { Kind = "request" }, new AuditQuery { KeyId = "k2", Tenant = "t1" },
                new AuditQuery { ClientIp = "10.0.0.1", Status = 404 }, new AuditQuery { Kind = "ip.blocked", KeyId = "k3", Status = 200 }, new AuditQuery { Kind = "none" },
                new AuditQuery { RequestId = "req-7" }, new AuditQuery { Kind = "request", RequestId = "req-12" }, new AuditQuery { RequestId = "req-none" },
            };
            foreach (var query in queries)
            {
                var expected = all.Where(r => (query.Kind is null || r.Kind == query.Kind) && (query.KeyId is null || r.KeyId == query.KeyId)
                    && (query.Tenant is null || r.Tenant == query.Tenant) && (query.ClientIp is null || r.ClientIp == query.ClientIp)
                    && (query.Status is null || r.Status == query.Status) && (query.RequestId is null || r.RequestId == query.RequestId)).Select(r => r.Detail).ToList();
                for (var offset = 0; offset <= expected.Count + 7; offset += 7)
                {
                    var page = await storage.Audit.SearchAsync(query, 7, offset);
                    Assert.Equal(expected.Skip(offset).Take(7), page.Select(r => r.Detail));
                }
            }
            Assert.Equal(all.Count(r => r.Kind == "request"), (await storage.Audit.ReadRecentAsync(1000, "request")).Count);
        }
    }

    [Theory]
    [InlineData(TestDatabases.Sqlite)]
    [InlineData(TestDatabases.Postgres)]
    public async Task UsageOfADayListsEveryKeysTotalsOfThatDayOnly(string kind)
    {
        var (storage, _) = await TestDatabases.OpenAsync(kind);
        await using (storage)
        {
            await storage.Audit.WriteAsync([Request("a", Day1, 10, 1), Request("a", Day1, 20, 2), Request("b", Day1, 7, 0), Request("a", Day1.AddMinutes(2), 5, 5)]);
            var usage = await storage.Audit.UsageOnAsync("2026-03-01");
            Assert.Equal(2, usage.Count);
            Assert.Equal(await storage.Audit.UsageAsync("a", "2026-03-01"), usage["a"]);
            Assert.Equal(await storage.Audit.UsageAsync("b", "2026-03-01"), usage["b"]);
            Assert.Empty(await storage.Audit.UsageOnAsync("2026-03-03"));
        }
    }

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
