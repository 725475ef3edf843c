using System.Text.RegularExpressions;

namespace Bulwark.Server.Tests.Deploy;

/// <summary>deploy/alertmanager/alertmanager.yml, checked and routed by the real amtool.</summary>
public sealed partial class AlertmanagerConfigTests
{
    private static string Config => DeployTools.PathOf("alertmanager", "alertmanager.yml");

    [Fact]
    public async Task TheConfigPassesAmtoolCheckConfig()
    {
        var result = await DeployTools.SucceedAsync("amtool", ["check-config", Config]);
        Assert.Contains("SUCCESS", result.All);
    }

    [Theory]
    [InlineData("pager", "severity=page", "alertname=BulwarkHighErrorRatio")]
    [InlineData("security,pager", "severity=page", "category=security", "alertname=BulwarkModelTampered")]
    [InlineData("security,tickets", "severity=ticket", "category=security", "alertname=BulwarkRefusalSpike")]
    [InlineData("tickets", "severity=ticket", "alertname=BulwarkKvCachePressure")]
    [InlineData("none", "severity=info", "alertname=BulwarkReplicaIsolated")]
    public async Task AlertsReachTheReceiversOfTheirSeverityAndCategory(string receivers, params string[] labels)
    {
        var result = await DeployTools.SucceedAsync("amtool", ["config", "routes", "test", $"--config.file={Config}", "--verify.receivers=" + receivers, .. labels]);
        Assert.Equal(receivers, result.Output.Trim());
    }

    [Fact]
    public void EveryAlertOfTheRulesHasASeverityTheRoutesKnow()
    {
        var routed = Yaml.File(Config)["route"]!["routes"]!.AsArray()
            .SelectMany(r => r!["matchers"]!.AsArray().Select(m => m!.GetValue<string>()))
            .Select(m => SeverityMatcher().Match(m)).Where(m => m.Success).Select(m => m.Groups[1].Value).ToHashSet();
        foreach (var alert in RuleFiles.Alerts) Assert.Contains(alert.Label("severity")!, routed);
    }

    [Fact]
    public void InhibitionsNameOnlyAlertsThatExist()
    {
        var alerts = RuleFiles.Alerts.Select(a => a.Name).ToHashSet();
        var named = Yaml.File(Config)["inhibit_rules"]!.AsArray()
            .SelectMany(r => r!["source_matchers"]!.AsArray().Concat(r["target_matchers"]!.AsArray()))
            .Select(m => AlertnameMatcher().Match(m!.GetValue<string>()))
            .Where(m => m.Success)
            .SelectMany(m => m.Groups[1].Value.Split('|'))
            .ToList();
        Assert.NotEmpty(named);
        Assert.All(named, name => Assert.Contains(name, alerts));
    }

    [Fact]
    public void NoReceiverHoldsACredentialInline()
    {
        var text = File.ReadAllText(Config);
        Assert.DoesNotMatch(@"(?m)^\s*(routing_key|service_key|api_url|url|auth_password|password|bearer_token|credentials):", text);
    }

    [GeneratedRegex(@"^severity=""(\w+)""$")]
    private static partial Regex SeverityMatcher();

    [GeneratedRegex(@"^alertname=~?""([^""]+)""$")]
    private static partial Regex AlertnameMatcher();
}
