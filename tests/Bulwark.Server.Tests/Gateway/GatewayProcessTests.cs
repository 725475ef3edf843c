using System.Net.Http.Headers;
using System.Text.Json;
using Bulwark.Server.Hosting;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Replicas;
using Bulwark.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Tests.Gateway;

/// <summary>The gateway in front of real <c>bulwark serve</c> processes, one of which dies mid-run.</summary>
public sealed class GatewayProcessTests
{
    [Fact]
    public async Task KillingOneUpstreamProcessMidRunLosesNoRequest()
    {
        var pair = new ServeProcessPair();
        await pair.InitializeAsync();
        try
        {
            // One key both upstream replicas accept (they share their key store), as the gateway's credential.
            var upstreamKey = (await pair.Keys.CreateAsync(new KeySpec { Name = "gateway" }, "test")).Key;
            var variable = "BULWARK_TEST_UPSTREAM_KEY_" + Guid.NewGuid().ToString("N");
            Environment.SetEnvironmentVariable(variable, upstreamKey);
            var builder = BulwarkServer.CreateBuilder([], new Dictionary<string, string?>
            {
                ["Bulwark:Server:Port"] = "0",
                [ServerSettings.DataDirKey] = Fixtures.NewTempDirectory("gateway"),
                ["Bulwark:Upstreams:replicas:Endpoints:0:Url"] = new Uri(pair.A.Address, "v1").ToString(),
                ["Bulwark:Upstreams:replicas:Endpoints:1:Url"] = new Uri(pair.B.Address, "v1").ToString(),
                ["Bulwark:Upstreams:replicas:ApiKeyEnv"] = variable,
                ["Bulwark:Upstreams:replicas:RetryDelay"] = "00:00:00.010",
            });
            builder.Logging.ClearProviders();
            await using var gateway = await ServeHost.StartAsync(builder, new StringWriter());
            var key = (await gateway.App.Services.GetRequiredService<KeyIssuer>().CreateAsync(new KeySpec { Name = "app" }, "test")).Key;
            using var client = new HttpClient { BaseAddress = gateway.Address, Timeout = TimeSpan.FromSeconds(120) };
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            // Greedy, so both replicas (the same demo weights) give every request the same answer.
            var body = JsonSerializer.Serialize(new { model = "bulwark-demo", max_tokens = 4, temperature = 0, messages = new[] { new { role = "user", content = "Hello" } } });
            string? first = null;
            for (var i = 0; i < 12; i++)
            {
                // Between two requests, so none is mid-stream on the dying replica: those that would go there are retried.
                if (i == 4) await pair.A.DisposeAsync();
                var (status, answer, _) = await RawHttp.PostJsonAsync(client, "v1/chat/completions", body);
                Assert.True(status == 200, $"request {i}: {status} {answer}");
                var choice = answer.GetProperty("choices")[0].GetRawText() + answer.GetProperty("usage").GetRawText();
                first ??= choice;
                Assert.Equal(first, choice);
            }
        }
        finally
        {
            await pair.DisposeAsync();
        }
    }
}
