using System.Text;
using System.Text.Json;
using Bulwark.Server.Audit;
using Bulwark.Server.Backends.Embedded;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Security;

namespace Bulwark.Server.Tests.Hosting;

/// <summary><c>POST /admin/prefix-cache/flush</c>: one tenant's cached prompt blocks (or everyone's) dropped from the embedded engine, audited, admin only.</summary>
public sealed class PrefixCacheFlushTests
{
    private static string Chat(string text) => JsonSerializer.Serialize(new
    {
        model = "alphabet", max_tokens = 2, temperature = 0, messages = new[] { new { role = "user", content = text } },
    });

    [Fact]
    public async Task AnAdminFlushesOneTenantsCachedBlocksAndTheOthersStay()
    {
        var backend = AlphabetModel.Backend();
        await using var server = await RunningServer.StartAsync(backend);
        var issuer = server.Get<KeyIssuer>();
        var admin = await issuer.CreateAsync(new KeySpec { Name = "ops", IsAdmin = true }, "test");
        var a = await issuer.CreateAsync(new KeySpec { Name = "a", Tenant = "tenant-a" }, "test");
        var b = await issuer.CreateAsync(new KeySpec { Name = "b", Tenant = "tenant-b" }, "test");
        var prompt = string.Concat(Enumerable.Repeat("abcdefghij", 8));
        Assert.Equal(200, (await RawHttp.PostJsonAsync(server.Client(a.Key), "v1/chat/completions", Chat(prompt))).Status);
        Assert.Equal(200, (await RawHttp.PostJsonAsync(server.Client(b.Key), "v1/chat/completions", Chat(prompt))).Status);
        var counters = backend.Engine.Counters;
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(10), () => Task.FromResult(counters.Running == 0 && counters.PrefixCachedBlocks > 0)));
        var cachedPerTenant = (int)counters.PrefixCachedBlocks / 2;
        // The blocks the requests did not leave in the prefix cache were cleared once the engine idled, and counted.
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(10), async () =>
            System.Text.RegularExpressions.Regex.Match(await server.Metrics.GetStringAsync("metrics"), @"^bulwark_kv_blocks_scrubbed_total (\d+)", System.Text.RegularExpressions.RegexOptions.Multiline)
                is { Success: true } m && long.Parse(m.Groups[1].Value) > 0), "bulwark_kv_blocks_scrubbed_total stayed 0");

        // An API key may not; an empty tenant is refused naming the field.
        Assert.Equal(403, (await RawHttp.PostJsonAsync(server.Client(a.Key), "admin/prefix-cache/flush", """{"tenant":"tenant-a"}""")).Status);
        var (status, body, _) = await RawHttp.PostJsonAsync(server.Client(admin.Key), "admin/prefix-cache/flush", """{"tenant":" "}""");
        Assert.Equal(400, status);
        Assert.Equal("tenant", RawHttp.Error(body).GetProperty("param").GetString());

        (status, body, _) = await RawHttp.PostJsonAsync(server.Client(admin.Key), "admin/prefix-cache/flush", """{"tenant":"tenant-a"}""");
        Assert.Equal(200, status);
        Assert.Equal(cachedPerTenant, body.GetProperty("blocks").GetInt32());
        Assert.Equal("alphabet", body.GetProperty("models")[0].GetProperty("model").GetString());
        Assert.Equal(cachedPerTenant, counters.PrefixCachedBlocks);

        // B's next request still finds its prefix; A's computes it again.
        var hits = counters.PrefixCacheHitTokens;
        Assert.Equal(200, (await RawHttp.PostJsonAsync(server.Client(b.Key), "v1/chat/completions", Chat(prompt))).Status);
        Assert.True(counters.PrefixCacheHitTokens > hits);
        hits = counters.PrefixCacheHitTokens;
        Assert.Equal(200, (await RawHttp.PostJsonAsync(server.Client(a.Key), "v1/chat/completions", Chat(prompt))).Status);
        Assert.Equal(hits, counters.PrefixCacheHitTokens);

        // No body: every tenant.
        using var all = await server.Client(admin.Key).PostAsync("admin/prefix-cache/flush", null);
        Assert.Equal(200, (int)all.StatusCode);
        Assert.Equal(0, counters.PrefixCachedBlocks);

        var records = await server.Get<SecurityStorage>().Audit.ReadRecentAsync(10, "prefix_cache.flushed");
        Assert.Equal(2, records.Count);
        Assert.Contains(records, r => r.Detail!.StartsWith("tenant tenant-a: ", StringComparison.Ordinal) && r.Detail.Contains(admin.Record.Id, StringComparison.Ordinal));
        Assert.Contains(records, r => r.Detail!.StartsWith("every tenant: ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TheCliFlushesThroughTheServer()
    {
        var backend = AlphabetModel.Backend();
        await using var server = await RunningServer.StartAsync(backend);
        var issuer = server.Get<KeyIssuer>();
        var admin = await issuer.CreateAsync(new KeySpec { Name = "ops", IsAdmin = true }, "test");
        var a = await issuer.CreateAsync(new KeySpec { Name = "a", Tenant = "tenant-a" }, "test");
        Assert.Equal(200, (await RawHttp.PostJsonAsync(server.Client(a.Key), "v1/chat/completions", Chat(string.Concat(Enumerable.Repeat("abcdefghij", 8))))).Status);
        var counters = backend.Engine.Counters;
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(10), () => Task.FromResult(counters.Running == 0 && counters.PrefixCachedBlocks > 0)));
        var cached = counters.PrefixCachedBlocks;

        var result = await Cli.CliHarness.RunWithAdminKeyAsync(admin.Key, "admin", "flush-cache", "--tenant", "tenant-a", "--url", server.Address.ToString());
        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Equal($"{cached} cached blocks of tenant tenant-a dropped", result.Output.Trim());
        Assert.Equal(0, counters.PrefixCachedBlocks);
        Assert.NotEqual(0, (await Cli.CliHarness.RunAsync("admin", "flush-cache")).ExitCode); // --url is required
    }
}
