using System.Globalization;

namespace Bulwark.Server.Backends.Upstream;

/// <summary>Reads one metric out of a Prometheus text exposition: the sum of its series' values.</summary>
internal static class PrometheusGauge
{
    public static double Sum(string exposition, string metric)
    {
        double sum = 0;
        foreach (var raw in exposition.AsSpan().EnumerateLines())
        {
            var line = raw.Trim();
            if (line.IsEmpty || line[0] == '#' || !line.StartsWith(metric, StringComparison.Ordinal)) continue;
            var rest = line[metric.Length..];
            // The name must end here: "x_waiting{...} 3" or "x_waiting 3", not "x_waiting_total 3".
            if (rest.IsEmpty || (rest[0] != '{' && rest[0] != ' ')) continue;
            if (rest[0] == '{')
            {
                var close = rest.LastIndexOf('}');
                if (close < 0) continue;
                rest = rest[(close + 1)..];
            }
            rest = rest.TrimStart();
            var end = rest.IndexOf(' ');
            var value = end < 0 ? rest : rest[..end];
            if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v)) sum += v;
        }
        return sum;
    }
}
