using Bulwark.Server.Tests.Security;
using System.Text.RegularExpressions;

namespace Bulwark.Server.Tests.Deploy;

/// <summary>
/// Every dashboard query and every rule, evaluated by a real Prometheus against what a live
/// <c>bulwark serve</c> exposes: no query errs, the core panels have series, and what the rules
/// assume of the series (bucket bounds, route templates) is what the server really exposes.
/// </summary>
public sealed partial class LivePrometheusTests(LivePrometheus live) : IClassFixture<LivePrometheus>
{
    [Fact]
    public async Task EveryDashboardQueryEvaluatesWithoutError()
    {
        var failures = new List<string>();
        foreach (var (panel, expression) in GrafanaDashboardTests.Queries)
        {
            var (ok, _, error) = await live.QueryAsync(GrafanaDashboardTests.AsPrometheusGetsIt(expression));
            if (!ok) failures.Add($"{panel}: {error}\n  {expression}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public async Task EveryRuleExpressionEvaluatesWithoutError()
    {
        var failures = new List<string>();
        foreach (var rule in RuleFiles.All)
        {
            var (ok, _, error) = await live.QueryAsync(rule.Expression);
            if (!ok) failures.Add($"{rule.Name}: {error}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public async Task PrometheusLoadedEveryRuleAndEvaluatesEachOneHealthy()
    {
        var health = await live.RuleHealthAsync();
        Assert.Equal(RuleFiles.All.Select(r => r.Name).Order(), health.Select(h => h.Name).Order());
        var unhealthy = health.Where(h => h.Health != "ok").Select(h => $"{h.Name}: {h.Health} {h.Error}").ToList();
        Assert.True(unhealthy.Count == 0, string.Join("\n", unhealthy) + "\n" + live.PrometheusOutput);
    }

    [Theory]
    [InlineData("Requests per second by route")]
    [InlineData("Responses per second by status")]
    [InlineData("Time to first token")]
    [InlineData("Inter-token latency")]
    [InlineData("Request duration (generation routes)")]
    [InlineData("Admission queue time")]
    [InlineData("Generated tokens per second")]
    [InlineData("Prompt tokens per second")]
    [InlineData("Admission: running and waiting")]
    [InlineData("Engine sequences")]
    [InlineData("KV cache usage")]
    [InlineData("Refusals by reason")]
    [InlineData("Scrape up")]
    public async Task ACorePanelShowsSeriesFromTheLiveServer(string title)
    {
        var expressions = GrafanaDashboardTests.Queries.Where(q => q.Panel == title).Select(q => q.Expression).ToList();
        Assert.NotEmpty(expressions);
        var (ok, result, error) = await live.QueryAsync(GrafanaDashboardTests.AsPrometheusGetsIt(expressions[0]));
        Assert.True(ok, error);
        Assert.True(result.GetArrayLength() > 0, $"'{title}' has no series: {expressions[0]}");
        // Rates and percentiles have a number, not NaN: the traffic came between scrapes.
        Assert.Contains(result.EnumerateArray(), s => s.GetProperty("value")[1].GetString() is not ("NaN" or "+Inf" or "-Inf"));
    }

    [Fact]
    public async Task TheRequestsSentAreCountedByRouteAndTheRefusalsByReason()
    {
        Assert.True(await live.ValueAsync("sum(bulwark_http_requests_total{route=\"/v1/chat/completions\",status=\"200\"})") >= 4);
        Assert.True(await live.ValueAsync("sum(bulwark_rejected_requests_total{reason=\"invalid_key\"})") >= 1);
        Assert.True(await live.ValueAsync("sum(bulwark_rejected_requests_total{reason=\"missing_credentials\"})") >= 1);
        Assert.True(await live.ValueAsync("sum(bulwark_time_to_first_token_seconds_count{model=\"bulwark-demo\"})") >= 5);
    }

    [Fact]
    public async Task EveryBucketBoundTheRulesUseIsABucketTheServerExposes()
    {
        var bounds = RuleFiles.All.SelectMany(r => BucketBound().Matches(r.Expression)).Select(m => (Metric: m.Groups[1].Value, Le: m.Groups[2].Value)).Distinct().ToList();
        Assert.NotEmpty(bounds);
        foreach (var (metric, le) in bounds)
            Assert.True(await live.ValueAsync($"count({metric}{{le=\"{le}\"}})") >= 1, $"{metric} has no bucket le=\"{le}\": the SLO rules read a bound the server does not expose");
    }

    [Fact]
    public async Task TheRecordingRulesProduceTheRatiosTheBurnRateAlertsRead()
    {
        // A rule evaluated before the scrape that gave rate() its second sample had nothing yet: wait for the next evaluation.
        foreach (var query in new[]
                 {
                     "count(bulwark:ttft_slow_ratio:rate5m{model=\"bulwark-demo\"})",
                     "count(bulwark:request_slow_ratio:rate5m{route=\"/v1/chat/completions\"})",
                 })
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(30), async () => await live.ValueAsync(query) == 1), $"{query} never became 1");
    }

    [Fact]
    public async Task TheAdminActionAlertMatchesTheAdminRoutesTheServerReallyReports()
    {
        var alert = RuleFiles.Alerts.Single(a => a.Name == "BulwarkAdminActionOutsideChangeWindow");
        var selector = AdminSelector().Match(alert.Expression).Value;
        var (ok, result, error) = await live.QueryAsync(selector);
        Assert.True(ok, error);
        var routes = result.EnumerateArray().Select(s => s.GetProperty("metric").GetProperty("route").GetString()).Order().ToList();
        var (_, everything, _) = await live.QueryAsync("bulwark_http_requests_total{route=~\"/admin/.*\"}");
        var admin = everything.EnumerateArray().Select(s => s.GetProperty("metric").GetProperty("route").GetString()).Distinct().Order().ToList();
        Assert.True(routes.SequenceEqual(["/admin/isolate", "/admin/resume"]), $"the alert's selector matched [{string.Join(", ", routes)}] of the admin routes [{string.Join(", ", admin)}]");
        // Reads are not actions: the key creation and listing route stays out.
        Assert.Contains("/admin/keys", admin);
    }

    [Fact]
    public async Task TheReplicaVariableListsTheScrapedServer()
    {
        var variable = GrafanaDashboardTests.Dashboard["templating"]!["list"]!.AsArray().Single(v => v!["name"]!.GetValue<string>() == "instance")!;
        var selector = LabelValues().Match(variable["definition"]!.GetValue<string>());
        Assert.True(selector.Success, "the instance variable is not label_values(SELECTOR, instance)");
        var (ok, result, error) = await live.QueryAsync(selector.Groups[1].Value);
        Assert.True(ok, error);
        Assert.Single(result.EnumerateArray(), s => s.GetProperty("metric").TryGetProperty("instance", out _));
    }

    [GeneratedRegex(@"^label_values\((.+), instance\)$")]
    private static partial Regex LabelValues();

    [GeneratedRegex(@"(bulwark_[a-z_]+_bucket)\{[^}]*le=""([^""]+)""")]
    private static partial Regex BucketBound();

    [GeneratedRegex(@"bulwark_http_requests_total\{route=~""(?:[^""\\]|\\.)*"",status=~""2\.\.""\}")]
    private static partial Regex AdminSelector();
}
