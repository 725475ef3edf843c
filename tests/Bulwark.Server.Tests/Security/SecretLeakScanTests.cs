using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Bulwark.Server.Audit;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;

namespace Bulwark.Server.Tests.Security;

public class SecretLeakScanTests
{
    /// <summary>
    /// Runs every kind of request a deployment sees (good and bad keys, keys pasted where they do not
    /// belong, admin changes, rate limiting, metrics) with every log category at Trace, then scans
    /// every captured log line, every response (status line, headers, body) and every audit row for
    /// any key's secret part, the admin key, the HMAC secret and the metrics token.
    /// </summary>
    [Fact]
    public async Task NoKeyAdminOrHmacSecretAppearsInAnyLogLineResponseOrAuditRecordAfterAFullScenario()
    {
        var hmacSecret = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var metricsToken = Convert.ToHexString(RandomNumberGenerator.GetBytes(24)).ToLowerInvariant();
        var logs = new LogCapture();
        await using var app = await SecuredApp.StartAsync(SecuredApp.NewDataDir(), new Dictionary<string, string?>
        {
            ["Bulwark:Security:HmacSecret"] = hmacSecret,
            ["Bulwark:Security:MetricsToken"] = metricsToken,
            ["Bulwark:Audit:ContentTenants:0"] = "opted-in",
            ["Logging:LogLevel:Default"] = "Trace",
        }, logs);
        var secrets = new List<string> { hmacSecret, metricsToken };
        var seen = new StringBuilder();

        var admin = (await app.CreateKeyAsync(new KeySpec { Name = "ops", IsAdmin = true })).Key;
        secrets.Add(admin);
        using var adminClient = app.Client(admin);

        // Keys made through the admin API; the answer carries the key once, by design, so it is not scanned.
        var created = new List<string>();
        foreach (var (name, tenant) in new[] { ("a", "default"), ("b", "opted-in"), ("limited", "default") })
        {
            using var response = await adminClient.PostAsJsonAsync("/admin/keys", new { name, tenant, rpm = name == "limited" ? 2 : 0 });
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            created.Add(json.RootElement.GetProperty("key").GetString()!);
        }
        secrets.AddRange(created);
        var (keyA, keyB, limited) = (created[0], created[1], created[2]);

        async Task Send(HttpRequestMessage request, string? bearer = null)
        {
            if (bearer is not null) request.Headers.TryAddWithoutValidation("Authorization", bearer);
            using var client = app.Client();
            using var response = await client.SendAsync(request);
            seen.AppendLine($"{(int)response.StatusCode} {response.Headers} {response.Content.Headers} {await response.Content.ReadAsStringAsync()}");
        }
        HttpRequestMessage Chat(string model) => new(HttpMethod.Post, "/v1/chat/completions") { Content = SecuredApp.Chat(model) };

        await Send(Chat("m1"), "Bearer " + keyA);
        await Send(Chat("m1"), "Bearer " + keyB);                                   // content is audited for this tenant
        await Send(Chat(keyA), "Bearer " + keyB);                                   // a key pasted into the model field
        await Send(Chat("m1"), "Bearer " + CredentialVariantTests.Tamper(keyA));    // near miss
        await Send(Chat("m1"), "bearer   " + keyA.ToUpperInvariant());              // wrong case
        await Send(Chat("m1"), "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("user:" + keyA)));
        await Send(Chat("m1"), "Bearer " + keyA + " " + keyB);
        await Send(new HttpRequestMessage(HttpMethod.Get, "/v1/models?api_key=" + keyA));
        await Send(new HttpRequestMessage(HttpMethod.Get, "/v1/models?x=" + keyB), "Bearer " + keyB);
        await Send(new HttpRequestMessage(HttpMethod.Get, "/v1/" + keyA));
        await Send(new HttpRequestMessage(HttpMethod.Get, "/metrics"), "Bearer " + metricsToken);
        await Send(new HttpRequestMessage(HttpMethod.Get, "/metrics"), "Bearer " + metricsToken[..^1]);
        await Send(new HttpRequestMessage(HttpMethod.Get, "/admin/keys"), "Bearer " + keyA);
        await Send(new HttpRequestMessage(HttpMethod.Get, "/v1/models"), "Bearer " + hmacSecret);
        for (var i = 0; i < 4; i++) await Send(Chat("m1"), "Bearer " + limited);   // 429s
        await Send(new HttpRequestMessage(HttpMethod.Get, "/admin/keys"), "Bearer " + admin);
        await Send(new HttpRequestMessage(HttpMethod.Put, "/admin/log-level") { Content = JsonContent.Create(new { level = keyA }) }, "Bearer " + admin);
        await Send(new HttpRequestMessage(HttpMethod.Post, "/admin/ip-blocks") { Content = JsonContent.Create(new { cidr = keyB, reason = keyA }) }, "Bearer " + admin);
        await Send(new HttpRequestMessage(HttpMethod.Post, "/admin/ip-blocks") { Content = JsonContent.Create(new { cidr = "198.51.100.0/24", reason = keyA }) }, "Bearer " + admin);
        await Send(new HttpRequestMessage(HttpMethod.Get, "/admin/ip-blocks"), "Bearer " + admin);
        await Send(new HttpRequestMessage(HttpMethod.Post, $"/admin/keys/{keyA}/revoke"), "Bearer " + admin);

        var idA = keyA[4..16];
        using (var rotate = await adminClient.PostAsync($"/admin/keys/{idA}/rotate", null))
        {
            using var json = JsonDocument.Parse(await rotate.Content.ReadAsStringAsync());
            secrets.Add(json.RootElement.GetProperty("key").GetString()!);
        }
        await Send(new HttpRequestMessage(HttpMethod.Post, $"/admin/keys/{keyB[4..16]}/revoke"), "Bearer " + admin);
        await Send(Chat("m1"), "Bearer " + keyB);                                   // revoked

        await app.Get<AuditWriter>().FlushAsync();
        var audit = await app.Get<SecurityStorage>().Audit.ReadRecentAsync(10_000);
        Assert.True(audit.Count >= 25, $"expected an audit record per request and admin action; got {audit.Count}");
        var auditText = string.Join("\n", audit.Select(r => JsonSerializer.Serialize(r)));
        var logText = string.Join("\n", logs.Lines);
        Assert.True(logs.Lines.Count > 50, $"expected Trace-level logs from the whole scenario; got {logs.Lines.Count} lines");
        // The key pasted into the model field was logged (redacted) by the stand-in endpoint.
        Assert.Contains($"model bwk_{idA}_***", logText);

        foreach (var secret in secrets)
        {
            // A key's secret part is what must never leak; its public id may (it names the key).
            var needle = secret.StartsWith("bw", StringComparison.Ordinal) ? secret[17..] : secret;
            foreach (var (where, text) in new[] { ("the logs", logText), ("a response", seen.ToString()), ("the audit log", auditText) })
            {
                var at = text.IndexOf(needle, StringComparison.OrdinalIgnoreCase);
                // On failure, show the surroundings with the secret itself cut out.
                if (at >= 0) Assert.Fail($"a secret ({Describe(secret)}) appears in {where}: ...{text[Math.Max(0, at - 120)..at]}[secret]...");
            }
        }
    }

    private static string Describe(string secret) => secret.StartsWith("bw", StringComparison.Ordinal) ? "key " + secret[..16] : $"{secret.Length}-character secret";
}
