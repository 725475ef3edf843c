using System.Net.Http.Json;
using System.Net;
using System.Text.Json;
using System.Text;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Security;

namespace Bulwark.Server.Tests.Replicas;

/// <summary>
/// The replica promises held by two real <c>bulwark serve</c> processes over one PostgreSQL
/// store and one Redis: limits are exact across them, and an operator's change made through one
/// replica is in force on the other within a second.
/// </summary>
public sealed class ServeProcessReplicaTests(ServeProcessPair pair) : IClassFixture<ServeProcessPair>
{
    private static readonly TimeSpan OneSecond = TimeSpan.FromSeconds(1);

    [Theory]
    [InlineData(5, 7)]
    [InlineData(8, 8)]
    public async Task ABurstSplitAcrossTwoProcessesAdmitsExactlyTheRequestsPerMinute(int limit, int extra)
    {
        var key = (await pair.Keys.CreateAsync(new KeySpec { Name = $"burst-{limit}", Limits = new KeyLimits(limit, 0, 0, 0) }, "test")).Key;
        using var a = pair.A.Client(key);
        using var b = pair.B.Client(key);
        // GCRA refills one request every 60/limit s (7.5 s at 8/min): the burst is exact well within that.
        // The gate is awaited, not blocked on: blocked pool threads would start the requests seconds apart.
        var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var requests = Enumerable.Range(0, limit + extra).Select(i => Task.Run(async () =>
        {
            await go.Task;
            using var response = await (i % 2 == 0 ? a : b).PostAsync("v1/chat/completions", OneTokenChat());
            var body = await response.Content.ReadAsStringAsync();
            return (response.StatusCode, Body: body, RetryAfter: response.Headers.RetryAfter?.Delta);
        })).ToList();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        go.SetResult();
        var results = await Task.WhenAll(requests);
        var (least, most) = Security.GcraBurst.Admissible(limit, clock.Elapsed);

        var unexpected = results.Where(r => r.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.TooManyRequests)).ToList();
        Assert.True(unexpected.Count == 0, string.Join("\n", unexpected.Select(r => $"{(int)r.StatusCode}: {r.Body}")));
        var admitted = results.Count(r => r.StatusCode == HttpStatusCode.OK);
        Assert.True(admitted >= least && admitted <= most, $"admitted {admitted} of {limit + extra} in {clock.Elapsed.TotalSeconds:F1} s (allowed {least}..{most})");
        Assert.All(results.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests), r =>
        {
            Assert.Equal("requests", JsonDocument.Parse(r.Body).RootElement.GetProperty("error").GetProperty("code").GetString());
            Assert.True(r.RetryAfter >= TimeSpan.FromSeconds(1), $"Retry-After {r.RetryAfter}");
        });
    }

    [Fact]
    public async Task AKeyRevokedThroughProcessAIsRefusedByProcessBWithinOneSecond()
    {
        var issued = await pair.Keys.CreateAsync(new KeySpec { Name = "victim" }, "test");
        using var b = pair.B.Client(issued.Key);
        // Both replicas have looked the key up and cached it as valid.
        using (var a = pair.A.Client(issued.Key)) Assert.Equal(HttpStatusCode.OK, (await a.GetAsync("v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await b.GetAsync("v1/models")).StatusCode);

        using var admin = pair.A.Client(pair.AdminKey);
        using var revoke = await admin.PostAsync($"admin/keys/{issued.Record.Id}/revoke", null);
        Assert.Equal(HttpStatusCode.NoContent, revoke.StatusCode);
        Assert.True(await Eventually.WithinAsync(OneSecond, async () => (await b.GetAsync("v1/models")).StatusCode == HttpStatusCode.Unauthorized),
            "process B still accepted the key a second after process A revoked it");
    }

    [Fact]
    public async Task AKeyRotatedThroughProcessAIsReplacedOnProcessBWithinOneSecond()
    {
        var issued = await pair.Keys.CreateAsync(new KeySpec { Name = "rotating" }, "test");
        using var oldOnB = pair.B.Client(issued.Key);
        Assert.Equal(HttpStatusCode.OK, (await oldOnB.GetAsync("v1/models")).StatusCode);

        using var admin = pair.A.Client(pair.AdminKey);
        using var rotate = await admin.PostAsync($"admin/keys/{issued.Record.Id}/rotate", null);
        Assert.Equal(HttpStatusCode.OK, rotate.StatusCode);
        var replacement = (await rotate.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetString()!;
        Assert.True(await Eventually.WithinAsync(OneSecond, async () => (await oldOnB.GetAsync("v1/models")).StatusCode == HttpStatusCode.Unauthorized),
            "process B still accepted the old key a second after process A rotated it");
        using var newOnB = pair.B.Client(replacement);
        Assert.Equal(HttpStatusCode.OK, (await newOnB.GetAsync("v1/models")).StatusCode);
    }

    [Fact]
    public async Task AnAddressBlockedThroughProcessAIsRefusedByProcessBWithinOneSecond()
    {
        var key = (await pair.Keys.CreateAsync(new KeySpec { Name = "blocked" }, "test")).Key;
        using var b = pair.B.Client(key);
        Assert.Equal(HttpStatusCode.OK, (await b.GetAsync("v1/models")).StatusCode);
        try
        {
            using var admin = pair.A.Client(pair.AdminKey);
            using var block = await admin.PostAsJsonAsync("admin/ip-blocks", new { cidr = "127.0.0.1", reason = "drill" });
            Assert.Equal(HttpStatusCode.OK, block.StatusCode);
            Assert.True(await Eventually.WithinAsync(OneSecond, async () => (await b.GetAsync("v1/models")).StatusCode == HttpStatusCode.Forbidden),
                "process B still served a blocked address a second after process A blocked it");
        }
        finally
        {
            // The block shuts this test out of the admin API too; it is lifted through the store, as `bulwark admin unblock-ip` does.
            await pair.Incidents.UnblockIpAsync("127.0.0.1/32", "test");
        }
        Assert.True(await Eventually.WithinAsync(OneSecond, async () => (await b.GetAsync("v1/models")).StatusCode == HttpStatusCode.OK),
            "process B still refused the address a second after it was unblocked");
    }

    [Fact]
    public async Task IsolatingEveryReplicaThroughProcessADrainsProcessBWithinOneSecondAndResumeThroughBReturnsBoth()
    {
        var key = (await pair.Keys.CreateAsync(new KeySpec { Name = "isolated" }, "test")).Key;
        using var a = pair.A.Client(key);
        using var b = pair.B.Client(key);
        using var adminA = pair.A.Client(pair.AdminKey);
        using var adminB = pair.B.Client(pair.AdminKey);
        try
        {
            using var isolate = await adminA.PostAsJsonAsync("admin/isolate", new { reason = "drill", all_replicas = true });
            Assert.Equal(HttpStatusCode.OK, isolate.StatusCode);
            // Process A, which took the call, is isolated before it answers.
            using (var refused = await a.PostAsync("v1/chat/completions", OneTokenChat()))
                Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            // Polled on the admin API, which answers at once: a generation started before the order arrives may finish (and take the second).
            Assert.True(await Eventually.WithinAsync(OneSecond, async () =>
                (await adminB.GetFromJsonAsync<JsonElement>("admin/isolation")).GetProperty("isolated").GetBoolean()),
                "process B was not isolated a second after every replica was isolated through process A");
            using (var refusedOnB = await b.PostAsync("v1/chat/completions", OneTokenChat()))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, refusedOnB.StatusCode);
                Assert.Contains("replica_isolated", await refusedOnB.Content.ReadAsStringAsync());
            }
            using (var ready = await pair.B.Client().GetAsync("ready")) Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            var status = await adminB.GetFromJsonAsync<JsonElement>("admin/isolation");
            Assert.True(status.GetProperty("isolated").GetBoolean());
            Assert.Equal("drill", status.GetProperty("reason").GetString());
        }
        finally
        {
            (await adminB.PostAsJsonAsync("admin/resume", new { all_replicas = true })).Dispose();
        }
        Assert.True(await Eventually.WithinAsync(OneSecond, async () =>
            !(await adminA.GetFromJsonAsync<JsonElement>("admin/isolation")).GetProperty("isolated").GetBoolean()),
            "process A was still isolated a second after every replica was resumed through process B");
        using (var servedOnA = await a.PostAsync("v1/chat/completions", OneTokenChat())) Assert.Equal(HttpStatusCode.OK, servedOnA.StatusCode);
        using var served = await b.PostAsync("v1/chat/completions", OneTokenChat());
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
    }

    [Fact]
    public async Task ALogLevelSetThroughProcessAChangesProcessBsLoggingWithinOneSecond()
    {
        // Both processes start at Warning: a request is not logged.
        var key = (await pair.Keys.CreateAsync(new KeySpec { Name = "logged" }, "test")).Key;
        using var b = pair.B.Client(key);
        const string requestLog = "Request finished HTTP/1.1 GET";
        Assert.Equal(HttpStatusCode.OK, (await b.GetAsync("v1/models")).StatusCode);
        Assert.DoesNotContain(requestLog, pair.B.Output);

        using var admin = pair.A.Client(pair.AdminKey);
        try
        {
            using var set = await admin.PutAsync("admin/log-level", new StringContent("""{"level":"Information"}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.NoContent, set.StatusCode);
            Assert.True(await Eventually.WithinAsync(OneSecond, async () =>
            {
                (await b.GetAsync("v1/models")).Dispose();
                // The console logger writes on its own thread: give the line a moment to appear.
                await Task.Delay(50);
                return pair.B.Output.Contains(requestLog, StringComparison.Ordinal);
            }), "process B did not log at Information a second after process A set it");
        }
        finally
        {
            (await admin.PutAsync("admin/log-level", new StringContent("""{"level":"default"}""", Encoding.UTF8, "application/json"))).Dispose();
        }
        // What the raised level logged never carries the key.
        Assert.DoesNotContain(key, pair.B.Output);
    }

    private static StringContent OneTokenChat() => new(
        """{"model":"bulwark-demo","messages":[{"role":"user","content":"hi"}],"max_tokens":1,"temperature":0}""", Encoding.UTF8, "application/json");
}
