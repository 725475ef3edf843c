using System.Text.Json.Nodes;

namespace Bulwark.Server.Tests.Deploy;

/// <summary>One rule of deploy/prometheus/rules: an alert or a recording rule.</summary>
internal sealed record PrometheusRule(string File, string Group, string Name, bool IsAlert, string Expression, JsonNode Node)
{
    public string? Label(string name) => Node["labels"]?[name]?.GetValue<string>();

    public string? Annotation(string name) => Node["annotations"]?[name]?.GetValue<string>();
}

/// <summary>The rule files in deploy/prometheus/rules and their promtool tests in deploy/prometheus/tests.</summary>
internal static class RuleFiles
{
    public static IReadOnlyList<string> Paths { get; } =
        [.. Directory.GetFiles(DeployTools.PathOf("prometheus", "rules"), "*.yml").Order(StringComparer.Ordinal)];

    public static IReadOnlyList<string> TestPaths { get; } =
        [.. Directory.GetFiles(DeployTools.PathOf("prometheus", "tests"), "*.yml").Order(StringComparer.Ordinal)];

    public static IReadOnlyList<PrometheusRule> All { get; } = Read();

    public static IEnumerable<PrometheusRule> Alerts => All.Where(r => r.IsAlert);

    private static List<PrometheusRule> Read()
    {
        var rules = new List<PrometheusRule>();
        foreach (var path in Paths)
        {
            foreach (var group in Yaml.File(path)["groups"]!.AsArray())
            {
                foreach (var rule in group!["rules"]!.AsArray())
                {
                    var alert = rule!["alert"]?.GetValue<string>();
                    var name = alert ?? rule["record"]!.GetValue<string>();
                    rules.Add(new PrometheusRule(Path.GetFileName(path), group["name"]!.GetValue<string>(), name, alert is not null, rule["expr"]!.GetValue<string>(), rule));
                }
            }
        }
        return rules;
    }
}
