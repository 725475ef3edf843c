using System.Net;
using Bulwark.Server.Audit;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Hosting;
using Bulwark.Server.Tests.Security;

namespace Bulwark.Server.Tests.Faults;

/// <summary>
/// <c>Bulwark:Audit:WhenUnrecorded</c>: while audit records are lost (the store refuses them and there is
/// no spool to take them), <c>refuse</c> answers new inference with 503 <c>audit_unavailable</c> and fails
/// <c>/ready</c>, and serves again once a record reaches the store; <c>serve</c> (the default) serves on.
/// </summary>
public sealed class AuditRefusalTests
{
    private const string Chat = """{"model":"test-model","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"temperature":0}""";

    private static async Task<RunningServer> StartAsync(string policy) => await RunningServer.StartAsync(new ScriptedBackend(), new()
    {
        ["Bulwark:Audit:WhenUnrecorded"] = policy,
        ["Bulwark:Audit:SpoolLimitBytes"] = "0", // no spool: what the store refuses is lost
        ["Bulwark:Audit:FlushInterval"] = "00:00:00.010",
    });

    private static string Database(RunningServer server) => Path.Combine(server.Get<DataDirectory>().StatePath, SecurityStorage.SqliteFileName);

    private static Task RefuseAuditInsertsAsync(RunningServer server) =>
        SqliteFile.ScalarAsync(Database(server), "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");

    [Fact]
    public async Task WithRefuseInferenceStopsWhileRecordsAreLostAndResumesWhenTheStoreTakesThemAgain()
    {
        await using var server = await StartAsync("refuse");
        var writer = server.Get<AuditWriter>();
        Assert.Equal(200, (await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat)).Status);
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("ready")).StatusCode);

        await RefuseAuditInsertsAsync(server);
        // This request is served; its record is the first one lost.
        Assert.Equal(200, (await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat)).Status);
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(20), () => Task.FromResult(writer.IsLosingRecords)), "no record was lost");

        var (status, body, response) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat);
        Assert.Equal(503, status);
        Assert.Equal("audit_unavailable", RawHttp.Error(body).GetProperty("code").GetString());
        Assert.NotNull(response.Headers.RetryAfter);
        var ready = await server.Http.GetAsync("ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Contains("audit records are being lost", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        // The operator's hands are free: admin and metrics answer.
        Assert.Contains("reason=\"audit_unavailable\"", await server.Metrics.GetStringAsync("metrics"), StringComparison.Ordinal);

        await SqliteFile.ScalarAsync(Database(server), "DROP TRIGGER refuse_audit");
        // The refusals' own records reach the store now, which ends the loss.
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(20), async () =>
            (await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat)).Status == 200), "inference did not resume once the store took records again");
        Assert.False(writer.IsLosingRecords);
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("ready")).StatusCode);
    }

    [Fact]
    public async Task WithServeTheDefaultRequestsAreServedAndTheLossCounted()
    {
        await using var server = await StartAsync("serve");
        var writer = server.Get<AuditWriter>();
        await RefuseAuditInsertsAsync(server);
        Assert.Equal(200, (await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat)).Status);
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(20), () => Task.FromResult(writer.IsLosingRecords && writer.Dropped > 0)), "no record was lost");
        Assert.Equal(200, (await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", Chat)).Status);
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("ready")).StatusCode);
    }

    [Fact]
    public async Task AnUnknownPolicyStopsStartUpNamingTheSetting()
    {
        var e = await Assert.ThrowsAsync<ServerConfigurationException>(() => StartAsync("sometimes"));
        Assert.Contains("WhenUnrecorded", string.Join('\n', e.Problems), StringComparison.Ordinal);
    }
}
