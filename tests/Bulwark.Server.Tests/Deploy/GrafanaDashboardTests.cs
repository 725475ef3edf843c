using System.Text.Json.Nodes;

namespace Bulwark.Server.Tests.Deploy;

/// <summary>
/// deploy/grafana: the dashboard's structure and the metrics its panels read. (Its queries are
/// evaluated by a real Prometheus in <see cref="LivePrometheusTests"/>; no Grafana runs here.)
/// </summary>
public sealed class GrafanaDashboardTests
{
    public static JsonNode Dashboard => JsonNode.Parse(File.ReadAllText(DeployTools.PathOf("grafana", "dashboards", "bulwark.json")))!;

    /// <summary>Every panel query, with the panel's title.</summary>
    public static IEnumerable<(string Panel, string Expression)> Queries =>
        Dashboard["panels"]!.AsArray()
            .Where(p => p!["targets"] is not null)
            .SelectMany(p => p!["targets"]!.AsArray().Select(t => (p["title"]!.GetValue<string>(), t!["expr"]!.GetValue<string>())));

    /// <summary>A query as Prometheus would get it from Grafana: every replica, a one-minute rate window.</summary>
    public static string AsPrometheusGetsIt(string expression) =>
        expression.Replace("$__rate_interval", "1m").Replace("$instance", ".*");

    [Fact]
    public void TheDashboardHasThePanelsTheIssueAsksFor()
    {
        var titles = Dashboard["panels"]!.AsArray().Select(p => p!["title"]!.GetValue<string>()).ToList();
        foreach (var wanted in new[]
        {
            "Requests per second by route", "Time to first token", "Inter-token latency", "Request duration (generation routes)",
            "Generated tokens per second", "Admission: running and waiting", "KV cache usage", "Prefix cache hit ratio",
            "Refusals by reason", "Input guard verdicts", "Upstream health",
        })
            Assert.Contains(wanted, titles);
    }

    [Fact]
    public void EveryPanelUsesTheDataSourceVariableAndHasUniqueIdsAndPlaces()
    {
        var panels = Dashboard["panels"]!.AsArray().Select(p => p!).ToList();
        Assert.Equal(panels.Count, panels.Select(p => p["id"]!.GetValue<int>()).Distinct().Count());
        foreach (var panel in panels.Where(p => p["type"]!.GetValue<string>() != "row"))
        {
            Assert.Equal("${datasource}", panel["datasource"]!["uid"]!.GetValue<string>());
            var grid = panel["gridPos"]!;
            Assert.InRange(grid["x"]!.GetValue<int>() + grid["w"]!.GetValue<int>(), 1, 24);
            var targets = panel["targets"]!.AsArray();
            Assert.NotEmpty(targets);
            Assert.Equal(targets.Count, targets.Select(t => t!["refId"]!.GetValue<string>()).Distinct().Count());
        }
        var variables = Dashboard["templating"]!["list"]!.AsArray().Select(v => v!["name"]!.GetValue<string>()).ToList();
        Assert.Equal(["datasource", "instance"], variables);
        Assert.Equal("bulwark-overview", Dashboard["uid"]!.GetValue<string>());
    }

    [Fact]
    public void EveryQueryReadsOnlyDocumentedMetricsAndLabels()
    {
        var problems = Queries.SelectMany(q => MetricCatalog.Problems(q.Expression).Select(p => $"{q.Panel}: {p}")).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void PercentilesAggregateByLeSoMoreLabelsOnTheSeriesDoNotSplitThem()
    {
        foreach (var (panel, expression) in Queries.Where(q => q.Expression.Contains("histogram_quantile")))
            Assert.Matches(@"histogram_quantile\([0-9.]+, sum by \(le(, \w+)*\) \(rate\(", expression);
    }

    [Fact]
    public void TheProvisionedDataSourceIsTheOneThePanelsPick()
    {
        var source = Yaml.File(DeployTools.PathOf("grafana", "provisioning", "datasources", "prometheus.yml"))["datasources"]![0]!;
        Assert.Equal("prometheus", source["type"]!.GetValue<string>());
        Assert.Equal("true", source["isDefault"]!.GetValue<string>());
        var variable = Dashboard["templating"]!["list"]!.AsArray().Single(v => v!["name"]!.GetValue<string>() == "datasource")!;
        Assert.Equal("prometheus", variable["query"]!.GetValue<string>());
    }
}
