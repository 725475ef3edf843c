using System.Net;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Security;
using OpenQA.Selenium;

namespace Bulwark.Server.Tests.OperatorConsole;

/// <summary>
/// The console end to end in a real headless Chromium: sign in, every page (with a screenshot), create a key and use
/// it, revoke it, roll a model back, block an address, chat in the playground with streaming, and stored XSS through a
/// key name and a model name that must stay text.
/// </summary>
[Collection("console browser")] // one Chromium at a time on a small machine
public sealed class ConsoleBrowserTests(ConsoleBrowser browser) : IClassFixture<ConsoleBrowser>
{
    private async Task SignedInAsync()
    {
        browser.Open("console");
        if (browser.Driver.Url.Contains("/sign-in", StringComparison.Ordinal))
        {
            browser.Screenshot("sign-in");
            await browser.SignInAsync();
        }
    }

    [Fact]
    public async Task SigningInShowsEveryPageAndTheOverviewUpdatesItself()
    {
        await SignedInAsync();
        Assert.Equal(HttpStatusCode.OK, await ConsoleKeysTests.CompleteAsync(browser.Host, browser.Host.Api.Key, "alpha"));
        // The script ran under the strict CSP, fetched the figures and drew a chart.
        await browser.UntilAsync(() => browser.Find("[data-figure=requests]").Text != "–", "the overview's figures were never filled in");
        await browser.UntilAsync(() => browser.FindAll("[data-chart=requests_rate] svg path").Count == 1, "the overview drew no chart");
        Assert.NotEqual("no data yet", browser.Find("[data-figure=ttft]").Text);
        browser.Screenshot("overview");
        foreach (var (path, title) in new[] { ("keys", "Keys"), ("models", "Models"), ("incidents", "Incidents"), ("guard", "Guard"), ("audit", "Audit"), ("playground", "Playground") })
        {
            browser.Open("console/" + path);
            Assert.Equal(title, browser.Find("main h1").Text);
            Assert.Equal("page", browser.Find("nav a[aria-current]").GetAttribute("aria-current"));
            browser.Screenshot(path);
        }
    }

    [Fact]
    public async Task AKeyCreatedInTheBrowserWorksUntilItIsRevokedThere()
    {
        await SignedInAsync();
        browser.Open("console/keys");
        browser.Find("details.panel summary").Click();
        browser.Find("#name").SendKeys("browser-key");
        browser.Find("#models").SendKeys("alpha");
        browser.Find("#tpd").SendKeys("100000");
        browser.Find("#create-key button[type=submit]").Click();
        await browser.UntilAsync(() => browser.FindAll("#issued-key").Count == 1, "no key was shown after creating one");
        var key = browser.Find("#issued-key").Text;
        browser.Screenshot("key-created");
        Assert.StartsWith("bwk_", key);
        Assert.Equal(HttpStatusCode.OK, await ConsoleKeysTests.CompleteAsync(browser.Host, key, "alpha"));

        var id = key.Split('_')[1];
        browser.Find($"tr[data-key-id='{id}'] button.danger").Click();
        await browser.UntilAsync(() => browser.Find($"tr[data-key-id='{id}'] td.state").Text == "revoked", "the key was not shown revoked");
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(2), async () => await ConsoleKeysTests.CompleteAsync(browser.Host, key, "alpha") == HttpStatusCode.Unauthorized),
            "the API still took the key a browser revoked");
        browser.Screenshot("key-revoked");
    }

    [Fact]
    public async Task RollingAModelBackInTheBrowserChangesWhatServes()
    {
        await SignedInAsync();
        browser.Open("console/models");
        browser.Find("button[aria-label='Serve alpha v2']").Click();
        await browser.UntilAsync(() => browser.Find("[data-model=alpha] .current").Text == "v2", "alpha did not switch to v2");
        Assert.Equal("alpha v2", await TextAsync("alpha"));
        browser.Find("[data-model=alpha] button.danger").Click();
        await browser.UntilAsync(() => browser.Find("[data-model=alpha] .current").Text == "v1", "alpha did not roll back to v1");
        Assert.Contains("rolled back from v2 to v1", browser.Find("p.notice").Text);
        Assert.Equal("alpha v1", await TextAsync("alpha"));
        browser.Screenshot("model-rolled-back");
    }

    [Fact]
    public async Task AnAddressBlockedInTheBrowserIsRefused()
    {
        await SignedInAsync();
        using var other = ConsoleActionsTests.FromAddress(browser.Host, Loopback.Blocked);
        Assert.Equal(HttpStatusCode.OK, (await other.GetAsync("health")).StatusCode);
        browser.Open("console/incidents");
        browser.Find("#cidr").SendKeys("127.0.0.3");
        browser.Find("#block-reason").SendKeys("browser test");
        browser.Find("#block-ip button[type=submit]").Click();
        await browser.UntilAsync(() => browser.FindAll("tr[data-cidr='127.0.0.3/32']").Count == 1, "the block was not listed");
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(2), async () => (await other.GetAsync("health")).StatusCode == HttpStatusCode.Forbidden),
            "127.0.0.3 was still served after the browser blocked it");
        browser.Screenshot("ip-blocked");
        browser.Find("tr[data-cidr='127.0.0.3/32'] button").Click();
        await browser.UntilAsync(() => browser.FindAll("tr[data-cidr='127.0.0.3/32']").Count == 0, "the block was not removed");
    }

    [Fact]
    public async Task ThePlaygroundStreamsAReplyPieceByPieceWithAMintedKey()
    {
        await SignedInAsync();
        browser.Open("console/playground");
        browser.FindAll("#pg-model option").First(o => o.Text == "alpha").Click();
        browser.Find("#pg-max-tokens").Clear();
        browser.Find("#pg-max-tokens").SendKeys("40");
        browser.Find("#pg-temperature").Clear();
        browser.Find("#pg-temperature").SendKeys("0");
        browser.Find("#pg-message").SendKeys("Hello there");
        // The reply stops after a few tokens until released: what the page shows by then came through the stream.
        browser.HoldAfter(6);
        browser.Find("#pg-send").Click();
        string Reply() => browser.FindAll("#pg-transcript .turn .content").LastOrDefault()?.Text ?? "";
        await browser.UntilAsync(() => Reply().Length >= 4, "no part of the reply arrived while generation was held");
        var partial = Reply();
        Assert.True(partial.Length < 40, $"the whole reply was shown while generation was held: '{partial}'");
        Assert.Equal("", browser.Find("#pg-stats").Text);
        browser.Screenshot("playground-streaming");
        browser.Release();
        await browser.UntilAsync(() => browser.Find("#playground").GetAttribute("data-done") == "2", "the reply never finished");
        var reply = Reply();
        Assert.StartsWith(partial, reply);
        Assert.StartsWith("alpha v1. ", reply);
        Assert.Equal(40, reply.Length);
        Assert.Matches(@"^TTFT \d+ ms · [\d.]+ tokens/s · 40 tokens$", browser.Find("#pg-stats").Text);
        Assert.StartsWith("Using playground key ", browser.Find("#pg-key-note").Text);
        // The input guard's verdict on the request, read back from its audit record.
        await browser.UntilAsync(() => browser.Find("#playground").GetAttribute("data-guard") == "allow", "the guard verdict was not shown");
        Assert.Matches(@"^Guard: allow \(score \d\.\d{3}\)$", browser.Find("#pg-guard").Text);
        browser.Screenshot("playground");
        // The key was minted for an hour and audited; the admin session was not what the API saw.
        var audit = await browser.Host.AuditAsync();
        var minted = Assert.Single(audit, r => r.Kind == "key.created" && r.Detail!.EndsWith("(console playground)", StringComparison.Ordinal));
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(5), async () => (await browser.Host.AuditAsync())
            .Any(r => r.Kind == "request" && r.Route == "POST /v1/chat/completions" && r.KeyId == minted.KeyId && r.Status == 200)), "the playground's request was not made with its minted key");
    }

    [Fact]
    public async Task ThePlaygroundSendsTheStructuredOutputAndToolOptionsAndRefusesBadJsonBeforeSending()
    {
        await SignedInAsync();
        browser.Open("console/playground");
        browser.FindAll("#pg-model option").First(o => o.Text == "alpha").Click();
        var backend = browser.Host.Backends.Last(b => b.Model.Id == "alpha");
        int Sent() { lock (backend.Requests) return backend.Requests.Count; }
        var before = Sent();
        // A pasted key: the minting test counts the keys the playground mints.
        browser.Find("#pg-key").SendKeys(browser.Host.Api.Key);

        // Tools that are not JSON: said in the stats line, and nothing reaches the API.
        browser.Find("#pg-tools").SendKeys("[not json");
        browser.Find("#pg-message").SendKeys("What is the weather?");
        browser.Find("#pg-send").Click();
        await browser.UntilAsync(() => browser.Find("#pg-stats").Text == "Error: the tools list is not valid JSON", "bad tools JSON was not reported");
        Assert.Equal(before, Sent());

        browser.Find("#pg-tools").Clear();
        browser.Find("#pg-tools").SendKeys("""[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]""");
        browser.FindAll("#pg-format option").First(o => o.GetAttribute("value") == "json_object").Click();
        browser.Find("#pg-send").Click();
        await browser.UntilAsync(() => browser.Find("#playground").GetAttribute("data-done") == "2", "the reply never finished");
        browser.Screenshot("playground-options");

        // The API got what the page offered: the tool with tool_choice auto, and JSON output.
        var request = backend.Requests[^1].Request;
        Assert.Equal("get_weather", Assert.Single(request.Tools!.Functions).Name);
        Assert.Equal("auto", request.Tools.Choice.ToString(), ignoreCase: true);
        Assert.Equal("json_object", request.ResponseFormat!.Type);
    }

    [Fact]
    public async Task StoredScriptInAKeyNameOrAModelNameIsShownAsTextAndNeverRuns()
    {
        const string keyName = "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>";
        const string modelName = "<svg onload=window.__xss=3>";
        var issued = await browser.Host.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = keyName, Models = [modelName] }, "tests");
        // The model a request named, as the audit log keeps it (for a model a key may not use, what the client sent).
        await browser.Host.Get<Bulwark.Server.Storage.SecurityStorage>().Audit.WriteAsync([new Bulwark.Server.Storage.AuditRecord
        {
            At = DateTimeOffset.UtcNow, Kind = "request", KeyId = issued.Record.Id, Model = modelName, Route = "POST /v1/chat/completions", Status = 404,
            Reason = "model_not_allowed",
        }]);
        await SignedInAsync();

        browser.Open("console/keys");
        var row = browser.Find($"tr[data-key-id='{issued.Record.Id}']");
        Assert.Equal(keyName, row.FindElement(By.CssSelector("td.name")).Text);
        Assert.Contains(modelName, row.Text);
        browser.Screenshot("xss-keys");
        browser.Open($"console/audit?key_id={issued.Record.Id}");
        await browser.UntilAsync(() => browser.FindAll("table.audit td").Any(td => td.Text == modelName), "the hostile model name is not shown as text in the audit log");
        browser.Screenshot("xss-audit");
        Assert.False(browser.ScriptInjected(), "a hostile key or model name ran as script");
        Assert.Empty(browser.FindAll("main img, main svg[onload]"));
    }

    private async Task<string> TextAsync(string model)
    {
        using var client = new HttpClient { BaseAddress = browser.Host.Address };
        client.DefaultRequestHeaders.Authorization = new("Bearer", browser.Host.Api.Key);
        using var response = await client.PostAsync("v1/completions", new StringContent($$"""{"model":"{{model}}","prompt":"hi","max_tokens":8,"temperature":0}""",
            System.Text.Encoding.UTF8, "application/json"));
        return System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!;
    }
}
