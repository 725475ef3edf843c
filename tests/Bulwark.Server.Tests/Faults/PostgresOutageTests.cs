using System.Net;
using System.Text.Json;
using Bulwark.Server.Audit;
using Bulwark.Server.Observability;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Security;

namespace Bulwark.Server.Tests.Faults;

/// <summary>
/// A real server whose key store and audit log are a private PostgreSQL the test kills and starts
/// again: keys already looked up keep working, a key that must be looked up is refused with 503,
/// and every audit record of the outage reaches the store once it is back — none lost, none twice.
/// </summary>
public sealed class PostgresOutageTests
{
    [Fact]
    public async Task RequestsDuringAnOutageAreServedFromTheKeyCacheAndEveryAuditRecordArrivesOnceAfterIt()
    {
        await using var postgres = await PrivatePostgres.StartNewAsync();
        await using var app = await SecuredApp.StartAsync(SecuredApp.NewDataDir(), new Dictionary<string, string?>
        {
            ["Bulwark:Storage:Postgres"] = postgres.ConnectionString,
            ["Bulwark:Security:KeyCacheLifetime"] = "00:10:00", // the whole test runs within one lifetime
            ["Bulwark:Audit:FlushInterval"] = "00:00:00.020",
        });
        var key = await app.CreateKeyAsync(new KeySpec { Name = "outage" });
        using var client = app.Client(key.Key);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"))).StatusCode);
        var writer = app.Get<AuditWriter>();
        await writer.FlushAsync();

        postgres.Kill();
        const int during = 20;
        for (var i = 0; i < during; i++)
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"))).StatusCode);
        // A key that is not cached cannot be checked: 503, not 401 (it may be valid) and not 200.
        using var stranger = app.Client(ApiKeyFormat.Generate(admin: false).Key);
        using var refused = await stranger.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        using (var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()))
            Assert.Equal("key_store_unavailable", error.RootElement.GetProperty("error").GetProperty("code").GetString());

        await writer.FlushAsync();
        Assert.True(writer.Spooled > 0, "nothing was spooled while the store was down");
        Assert.Equal(0, writer.Dropped);
        Assert.Contains(app.Logs.Lines, l => l.Contains("keeping them in", StringComparison.Ordinal) && l.Contains(AuditSpool.FileName, StringComparison.Ordinal));

        await postgres.StartAsync();
        var audit = app.Get<SecurityStorage>().Audit;
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(30), async () => writer.Spooled == 0),
            "the spool was not written to the store within 30 s of its restart");
        var records = await audit.ReadRecentAsync(1000, AuditRecord.RequestKind);
        Assert.Equal(1 + during, records.Count(r => r.KeyId == key.Record.Id && r.Status == 200));
        Assert.Contains(records, r => r.Status == 503 && r.Reason == "key_store_unavailable");
        Assert.Equal(records.Count, records.Select(r => r.Id).Distinct().Count());
        var usage = await audit.UsageAsync(key.Record.Id, DateTimeOffset.UtcNow.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(1 + during, usage!.Requests);
        Assert.Equal(0, app.Get<ServerMetrics>().AuditSpoolBytes);
        Assert.Contains(app.Logs.Lines, l => l.Contains("spooled records to", StringComparison.Ordinal));
    }
}
