using System.Text;
using System.Text.RegularExpressions;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Deploy;

/// <summary>
/// The metrics docs/metrics.md documents, with their labels, and a check that a PromQL query reads
/// only those: a rule or a panel on a metric or label that does not exist evaluates to nothing,
/// silently, so it is caught here instead.
/// </summary>
internal static partial class MetricCatalog
{
    /// <summary>Labels Prometheus adds to every scraped series.</summary>
    private static readonly string[] TargetLabels = ["instance", "job"];

    private static readonly Lazy<Dictionary<string, (string Type, HashSet<string> Labels)>> Documented = new(Read);

    public static IReadOnlyDictionary<string, (string Type, HashSet<string> Labels)> Metrics => Documented.Value;

    /// <summary>
    /// What in <paramref name="query"/> names an undocumented metric or label; empty when all is known.
    /// <paramref name="discoveryLabels"/>: labels the scrape configuration adds besides instance and job.
    /// </summary>
    public static List<string> Problems(string query, params string[] discoveryLabels)
    {
        var problems = new List<string>();
        var targetLabels = new HashSet<string>([.. TargetLabels, .. discoveryLabels]);
        var labelsInQuery = new HashSet<string>(targetLabels);
        foreach (Match m in MetricName().Matches(query))
        {
            var (metric, labels) = Resolve(m.Value);
            if (metric is null)
            {
                problems.Add($"{m.Value} is not in docs/metrics.md");
                continue;
            }
            labelsInQuery.UnionWith(labels);
            var at = m.Index + m.Length;
            if (at < query.Length && query[at] == '{')
            {
                foreach (var label in MatcherLabels(Selector(query, at)))
                    if (!labels.Contains(label) && !targetLabels.Contains(label))
                        problems.Add($"{m.Value} has no label '{label}' (docs/metrics.md: {string.Join(", ", labels)})");
            }
        }
        foreach (Match grouping in Grouping().Matches(query))
        {
            foreach (var label in grouping.Groups[1].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                if (!labelsInQuery.Contains(label))
                    problems.Add($"grouping by '{label}', a label no metric of the query has");
        }
        return problems;
    }

    /// <summary>A series name's metric and its labels: a histogram's _bucket (with le), _sum and _count are its own.</summary>
    private static (string? Metric, HashSet<string> Labels) Resolve(string name)
    {
        if (Metrics.TryGetValue(name, out var direct)) return (name, direct.Labels);
        foreach (var suffix in new[] { "_bucket", "_sum", "_count" })
        {
            if (!name.EndsWith(suffix, StringComparison.Ordinal)) continue;
            var histogram = name[..^suffix.Length];
            if (Metrics.TryGetValue(histogram, out var h) && h.Type == "histogram")
                return (histogram, suffix == "_bucket" ? [.. h.Labels, "le"] : h.Labels);
        }
        return (null, []);
    }

    /// <summary>The text between the selector's braces starting at <paramref name="open"/>, quotes and escapes respected.</summary>
    private static string Selector(string query, int open)
    {
        var inside = new StringBuilder();
        var quoted = false;
        for (var i = open + 1; i < query.Length; i++)
        {
            var c = query[i];
            if (quoted && c == '\\' && i + 1 < query.Length)
            {
                inside.Append(c).Append(query[++i]);
                continue;
            }
            if (c == '"') quoted = !quoted;
            else if (c == '}' && !quoted) return inside.ToString();
            inside.Append(c);
        }
        throw new FormatException($"unclosed selector in {query}");
    }

    private static IEnumerable<string> MatcherLabels(string selector)
    {
        // Matchers are label op "value"; values are quoted, so labels are what precedes an operator outside quotes.
        var outside = QuotedString().Replace(selector, "\"\"");
        return LabelMatcher().Matches(outside).Select(m => m.Groups[1].Value);
    }

    private static Dictionary<string, (string, HashSet<string>)> Read()
    {
        var metrics = new Dictionary<string, (string, HashSet<string>)>();
        foreach (var line in File.ReadLines(Path.Combine(Fixtures.RepositoryRoot, "docs", "metrics.md")))
        {
            if (TableRow().Match(line) is not { Success: true } row) continue;
            var labels = Backticked().Matches(row.Groups[3].Value).Select(m => m.Groups[1].Value).ToHashSet();
            metrics[row.Groups[1].Value] = (row.Groups[2].Value, labels);
        }
        return metrics;
    }

    [GeneratedRegex(@"\bbulwark_[a-z0-9_]+\b")]
    private static partial Regex MetricName();

    [GeneratedRegex(@"\b(?:by|without)\s*\(([^)]*)\)")]
    private static partial Regex Grouping();

    [GeneratedRegex(@"""(?:[^""\\]|\\.)*""")]
    private static partial Regex QuotedString();

    [GeneratedRegex(@"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")]
    private static partial Regex LabelMatcher();

    [GeneratedRegex(@"^\| `(bulwark_[a-z0-9_]+)` \| (\w+) \|([^|]*)\|")]
    private static partial Regex TableRow();

    [GeneratedRegex(@"`([a-z_]+)`")]
    private static partial Regex Backticked();
}
