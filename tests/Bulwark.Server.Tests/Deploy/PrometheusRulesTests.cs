using System.Text.RegularExpressions;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Deploy;

/// <summary>
/// deploy/prometheus: the rule files pass the real promtool, every alert has a promtool unit test
/// that makes it fire, every query reads only metrics and labels docs/metrics.md documents, and
/// every alert points into the runbook.
/// </summary>
public sealed partial class PrometheusRulesTests
{
    [Fact]
    public async Task EveryRuleFilePassesPromtoolCheckRules()
    {
        Assert.NotEmpty(RuleFiles.Paths);
        var result = await DeployTools.SucceedAsync("promtool", ["check", "rules", .. RuleFiles.Paths]);
        Assert.Equal(RuleFiles.Paths.Count, Regex.Matches(result.All, "SUCCESS").Count);
    }

    [Fact]
    public async Task ThePromtoolUnitTestsPass()
    {
        Assert.NotEmpty(RuleFiles.TestPaths);
        var result = await DeployTools.SucceedAsync("promtool", ["test", "rules", .. RuleFiles.TestPaths], DeployTools.PathOf("prometheus", "tests"));
        Assert.Equal(RuleFiles.TestPaths.Count, Regex.Matches(result.All, "SUCCESS").Count);
    }

    [Fact]
    public void EveryAlertHasAUnitTestInWhichItFiresAndEveryRuleFileIsTested()
    {
        var fired = new HashSet<string>();
        var testedFiles = new HashSet<string>();
        foreach (var path in RuleFiles.TestPaths)
        {
            var test = Yaml.File(path);
            foreach (var file in test["rule_files"]!.AsArray())
                testedFiles.Add(Path.GetFileName(file!.GetValue<string>()));
            foreach (var group in test["tests"]!.AsArray())
                foreach (var check in group!["alert_rule_test"]?.AsArray() ?? [])
                    if (check!["exp_alerts"]!.AsArray().Count > 0) fired.Add(check["alertname"]!.GetValue<string>());
        }
        var untested = RuleFiles.Alerts.Select(a => a.Name).Where(a => !fired.Contains(a)).ToList();
        Assert.True(untested.Count == 0, "alerts no promtool test makes fire: " + string.Join(", ", untested));
        Assert.Equal(RuleFiles.Paths.Select(Path.GetFileName).Order(), testedFiles.Order());
    }

    [Fact]
    public void EveryRuleReadsOnlyDocumentedMetricsAndLabels()
    {
        Assert.NotEmpty(MetricCatalog.Metrics);
        var problems = RuleFiles.All.SelectMany(r => MetricCatalog.Problems(r.Expression).Select(p => $"{r.File} {r.Name}: {p}")).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void TheCatalogCheckCatchesAnInventedMetricLabelOrGrouping()
    {
        // The check above must be able to fail: each of these names something docs/metrics.md does not have.
        Assert.NotEmpty(MetricCatalog.Problems("rate(bulwark_tokens_by_key_total[5m])"));
        Assert.NotEmpty(MetricCatalog.Problems("sum(rate(bulwark_rejected_requests_total{key_id=\"x\"}[5m]))"));
        Assert.NotEmpty(MetricCatalog.Problems("sum by (client_ip) (rate(bulwark_rejected_requests_total[5m]))"));
        Assert.NotEmpty(MetricCatalog.Problems("bulwark_kv_cache_usage_ratio_bucket"));
        Assert.Empty(MetricCatalog.Problems("histogram_quantile(0.9, sum by (le, model) (rate(bulwark_time_to_first_token_seconds_bucket{instance=~\".*\"}[5m])))"));
        Assert.Empty(MetricCatalog.Problems("bulwark_http_requests_total{route=~\"/admin/keys/\\\\{id\\\\}/revoke\",status=\"204\"}"));
    }

    [Fact]
    public void EveryAlertHasASeverityASummaryAndARunbookSectionThatExists()
    {
        var anchors = RunbookAnchors();
        foreach (var alert in RuleFiles.Alerts)
        {
            Assert.Contains(alert.Label("severity"), new[] { "page", "ticket", "info" });
            Assert.False(string.IsNullOrWhiteSpace(alert.Annotation("summary")), $"{alert.Name} has no summary");
            Assert.False(string.IsNullOrWhiteSpace(alert.Annotation("description")), $"{alert.Name} has no description");
            var runbook = alert.Annotation("runbook_url") ?? "";
            Assert.StartsWith("docs/operations.md#", runbook);
            Assert.True(anchors.Contains(runbook["docs/operations.md#".Length..]), $"{alert.Name}: {runbook} is not a section of docs/operations.md");
        }
    }

    [Fact]
    public void TheRunbookNamesEveryAlert()
    {
        var runbook = File.ReadAllText(Path.Combine(Fixtures.RepositoryRoot, "docs", "operations.md"));
        var missing = RuleFiles.Alerts.Select(a => a.Name).Where(a => !runbook.Contains($"`{a}`", StringComparison.Ordinal)).ToList();
        Assert.True(missing.Count == 0, "alerts docs/operations.md does not name: " + string.Join(", ", missing));
    }

    /// <summary>GitHub's anchors of the runbook's headings: lower case, spaces to hyphens, punctuation dropped.</summary>
    internal static HashSet<string> RunbookAnchors() =>
        File.ReadLines(Path.Combine(Fixtures.RepositoryRoot, "docs", "operations.md"))
            .Where(l => l.StartsWith('#'))
            .Select(l => NotInAnchor().Replace(l.TrimStart('#').Trim().ToLowerInvariant(), "").Replace(' ', '-'))
            .ToHashSet();

    [GeneratedRegex(@"[^a-z0-9 \-_]")]
    private static partial Regex NotInAnchor();
}
