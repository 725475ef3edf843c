using System.Text.RegularExpressions;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Security;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>
/// Per-key series for the security alerts: an issued key's tokens and policy refusals are counted under
/// its id; a key the server never issued creates no series (a client could invent any number).
/// </summary>
public sealed class KeyMetricsTests
{
    private const string Chat = """{"model":"test-model","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"temperature":0}""";

    private static long? Value(string metrics, string series) =>
        Regex.Match(metrics, "^" + Regex.Escape(series) + @" (\d+)", RegexOptions.Multiline) is { Success: true } m ? long.Parse(m.Groups[1].Value) : null;

    [Fact]
    public async Task AnIssuedKeysTokensAndRefusalsAreCountedUnderItsIdAndUnknownKeysCreateNoSeries()
    {
        await using var server = await RunningServer.StartAsync(new ScriptedBackend());
        var key = await server.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "one-a-minute", Limits = KeyLimits.None with { RequestsPerMinute = 1 } }, "test");
        using var client = server.Client(key.Key);
        var (status, body, _) = await RawHttp.PostJsonAsync(client, "v1/chat/completions", Chat);
        Assert.Equal(200, status);
        var usage = body.GetProperty("usage");
        var tokens = usage.GetProperty("prompt_tokens").GetInt64() + usage.GetProperty("completion_tokens").GetInt64();
        Assert.Equal(429, (await RawHttp.PostJsonAsync(client, "v1/chat/completions", Chat)).Status);
        var invented = $"bwk_{new string('z', 12)}_{new string('q', 32)}";
        Assert.Equal(401, (await RawHttp.PostJsonAsync(server.Client(invented), "v1/chat/completions", Chat)).Status);

        string metrics = "";
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(10), async () =>
        {
            metrics = await server.Metrics.GetStringAsync("metrics");
            return Value(metrics, $"bulwark_key_refusals_total{{key_id=\"{key.Record.Id}\",reason=\"rate_limit\"}}") == 1;
        }), "the refusal was not counted under the key");
        Assert.Equal(tokens, Value(metrics, $"bulwark_key_tokens_total{{key_id=\"{key.Record.Id}\"}}"));
        Assert.DoesNotContain("zzzzzzzzzzzz", metrics, StringComparison.Ordinal);
        Assert.DoesNotContain(key.Key, metrics, StringComparison.Ordinal);
    }
}
