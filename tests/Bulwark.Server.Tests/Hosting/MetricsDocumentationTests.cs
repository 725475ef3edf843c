using System.Diagnostics.Metrics;
using System.Text.RegularExpressions;
using Bulwark.Server.Observability;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Hosting;

public sealed class MetricsDocumentationTests
{
    [Fact]
    public void DocsListExactlyTheMetricsTheServerExports()
    {
        using var metrics = new ServerMetrics(() => default, () => (0, 0));
        _ = new Bulwark.Server.Guardrails.Input.GuardMetrics(metrics.Meter); // the input guard's instruments live on the same meter
        _ = new Bulwark.Server.Guardrails.GuardModels.GuardModelMetrics(metrics.Meter); // and the guard model stage's
        _ = new Bulwark.Server.Backends.Upstream.UpstreamMetrics(metrics); // and the gateway's
        var admission = new Bulwark.Server.Admission.AdmissionOptions();
        using var level = new Bulwark.Server.Admission.ServiceLevel(new Bulwark.Server.Admission.AdmissionQueue(admission, TimeProvider.System),
            new Bulwark.Server.Admission.ReplicaIsolation(TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<Bulwark.Server.Admission.ReplicaIsolation>.Instance),
            new Bulwark.Server.Admission.DegradationOptions(), admission, metrics, TimeProvider.System,
            Microsoft.Extensions.Logging.Abstractions.NullLogger<Bulwark.Server.Admission.ServiceLevel>.Instance); // and the service level's
        var exported = new HashSet<string>();
        using (var listener = new MeterListener())
        {
            listener.InstrumentPublished = (instrument, _) =>
            {
                if (instrument.Meter != metrics.Meter) return;
                var counter = instrument.GetType().Name.Contains("Counter", StringComparison.Ordinal);
                lock (exported) exported.Add(instrument.Name + (counter ? "_total" : ""));
            };
            listener.Start();
        }
        var doc = File.ReadAllText(Path.Combine(Fixtures.RepositoryRoot, "docs", "metrics.md"));
        var documented = Regex.Matches(doc, @"^\| `(bulwark_[a-z_]+)`", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToHashSet();
        Assert.True(exported.Count >= 18, $"found only {exported.Count} instruments");
        Assert.Equal(exported.Order(), documented.Order());
    }
}
