using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Deploy;

/// <summary>
/// deploy/compose, validated by the real docker-compose (config) and promtool (its Prometheus
/// configuration), in a copy of the deploy tree where init-secrets.sh has written the secrets, as an
/// operator runs it. No container is started: no engine runs on this machine (see deploy/docker).
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // file modes of the generated secrets
public sealed class ComposeTests : IAsyncLifetime
{
    private readonly string _root = Fixtures.NewTempDirectory("compose");
    private string Compose => Path.Combine(_root, "deploy", "compose");

    public async Task InitializeAsync()
    {
        DeployTools.CopyTree(DeployTools.Deploy, Path.Combine(_root, "deploy"));
        File.Copy(Path.Combine(Fixtures.RepositoryRoot, "Dockerfile"), Path.Combine(_root, "Dockerfile"));
        foreach (var generated in new[] { "bulwark.env", "secrets" })
        {
            var path = Path.Combine(Compose, generated);
            if (File.Exists(path)) File.Delete(path);
            if (Directory.Exists(path)) Directory.Delete(path, true);
        }
        await DeployTools.SucceedAsync("bash", ["init-secrets.sh"], Compose);
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_root, true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task DockerComposeConfigAcceptsTheStack()
    {
        var services = (await Config())["services"]!.AsObject();
        Assert.Equal(["alertmanager", "bulwark-a", "bulwark-b", "grafana", "postgres", "prometheus", "redis"], services.Select(s => s.Key).Order());
    }

    [Fact]
    public async Task BothReplicasShareOnePostgresAndOneRedisAndRunLockedDown()
    {
        var services = (await Config())["services"]!;
        var settings = File.ReadAllLines(Path.Combine(Compose, "bulwark.env")).Where(l => l.StartsWith("Bulwark__")).Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
        foreach (var name in new[] { "bulwark-a", "bulwark-b" })
        {
            var replica = services[name]!;
            var environment = replica["environment"]!;
            Assert.Equal(settings["Bulwark__Storage__Postgres"], environment["Bulwark__Storage__Postgres"]!.GetValue<string>());
            Assert.Contains("Host=postgres;", settings["Bulwark__Storage__Postgres"]);
            Assert.StartsWith("redis:6379,password=", environment["Bulwark__Quotas__Redis"]!.GetValue<string>());
            Assert.Equal(settings["Bulwark__Security__HmacSecret"], environment["Bulwark__Security__HmacSecret"]!.GetValue<string>());
            Assert.True(Convert.FromBase64String(settings["Bulwark__Security__HmacSecret"]).Length >= 32);
            Assert.True(environment["Bulwark__Security__MetricsToken"]!.GetValue<string>().Length >= 32);
            Assert.Equal("true", replica["read_only"]!.ToString(), ignoreCase: true);
            Assert.Equal(["ALL"], replica["cap_drop"]!.AsArray().Select(c => c!.GetValue<string>()));
            Assert.Contains("/tmp", replica["tmpfs"]!.ToJsonString());
            Assert.Contains(Mounts(replica), m => m.Target == "/data");
            // Published on loopback only.
            Assert.All(replica["ports"]!.AsArray(), p => Assert.Contains("127.0.0.1", p!.ToJsonString()));
        }
    }

    [Fact]
    public async Task NoSecretIsWrittenInTheComposeFiles()
    {
        var committed = string.Concat(Directory.GetFiles(DeployTools.PathOf("compose")).Where(f => !f.EndsWith(".sh")).Select(File.ReadAllText));
        foreach (var secret in Directory.GetFiles(Path.Combine(Compose, "secrets")).Select(File.ReadAllText))
            Assert.DoesNotContain(secret, committed);
        Assert.DoesNotMatch("(?i)password=[^$]", committed);
        // The secrets are files Compose mounts; the generated settings file and folder are ignored by git.
        var ignored = File.ReadAllLines(DeployTools.PathOf("compose", ".gitignore"));
        Assert.Contains("bulwark.env", ignored);
        Assert.Contains("secrets/", ignored);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.Combine(Compose, "secrets")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(Compose, "bulwark.env")));
        var services = (await Config())["services"]!;
        Assert.Equal("/run/secrets/grafana_admin_password", services["grafana"]!["environment"]!["GF_SECURITY_ADMIN_PASSWORD__FILE"]!.GetValue<string>());
        Assert.Equal("/run/secrets/postgres_password", services["postgres"]!["environment"]!["POSTGRES_PASSWORD_FILE"]!.GetValue<string>());
    }

    [Fact]
    public async Task InitSecretsKeepsWhatItWroteWhenRunAgain()
    {
        var before = Directory.GetFiles(Path.Combine(Compose, "secrets")).Append(Path.Combine(Compose, "bulwark.env")).ToDictionary(f => f, File.ReadAllText);
        await DeployTools.SucceedAsync("bash", ["init-secrets.sh"], Compose);
        foreach (var (file, text) in before) Assert.Equal(text, File.ReadAllText(file));
    }

    [Fact]
    public async Task PrometheusScrapesBothReplicasWithTheMetricsTokenFromItsSecret()
    {
        var prometheus = Yaml.File(Path.Combine(Compose, "prometheus.yml"));
        var job = prometheus["scrape_configs"]!.AsArray().Single(j => j!["job_name"]!.GetValue<string>() == "bulwark")!;
        Assert.Equal(["bulwark-a:8000", "bulwark-b:8000"], job["static_configs"]![0]!["targets"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.Equal("/run/secrets/metrics_token", job["authorization"]!["credentials_file"]!.GetValue<string>());
        var services = (await Config())["services"]!;
        Assert.Contains("metrics_token", services["prometheus"]!["secrets"]!.ToJsonString());

        // promtool reads the token file: point it at the one init-secrets.sh wrote, and the rules at deploy/prometheus/rules.
        var checkable = File.ReadAllText(Path.Combine(Compose, "prometheus.yml"))
            .Replace("/run/secrets/metrics_token", Path.Combine(Compose, "secrets", "metrics_token"))
            .Replace("/etc/prometheus/rules/", Path.Combine(_root, "deploy", "prometheus", "rules") + "/");
        File.WriteAllText(Path.Combine(Compose, "prometheus-check.yml"), checkable);
        var result = await DeployTools.SucceedAsync("promtool", ["check", "config", "prometheus-check.yml"], Compose);
        // promtool also checks each rule file the configuration loads: "N rules found" per file.
        Assert.Equal(RuleFiles.All.Count, Regex.Matches(result.All, @"(\d+) rules found").Sum(m => int.Parse(m.Groups[1].Value)));
    }

    [Fact]
    public async Task GrafanaIsProvisionedWithTheDashboardAndThePrometheusDataSource()
    {
        var grafana = (await Config())["services"]!["grafana"]!;
        var mounts = Mounts(grafana);
        var dashboards = Yaml.File(DeployTools.PathOf("grafana", "provisioning", "dashboards", "bulwark.yml"))["providers"]![0]!["options"]!["path"]!.GetValue<string>();
        var mountedDashboards = mounts.Single(m => m.Target == dashboards);
        Assert.True(File.Exists(Path.Combine(mountedDashboards.Source, "bulwark.json")), $"{dashboards} is mounted from {mountedDashboards.Source}, which has no bulwark.json");
        Assert.Contains(mounts, m => m.Target == "/etc/grafana/provisioning/datasources" && File.Exists(Path.Combine(m.Source, "prometheus.yml")));
        var source = Yaml.File(DeployTools.PathOf("grafana", "provisioning", "datasources", "prometheus.yml"))["datasources"]![0]!;
        Assert.Equal("http://prometheus:9090", source["url"]!.GetValue<string>());
    }

    /// <summary>The stack as docker-compose resolves it (env files read, paths made absolute).</summary>
    private async Task<JsonNode> Config()
    {
        var result = await DeployTools.SucceedAsync("docker-compose", ["-f", "docker-compose.yml", "config"], Compose);
        return Yaml.Documents(result.Output).Single();
    }

    /// <summary>A service's volumes as (source, target): Compose v1 prints "source:target:mode", v2 objects.</summary>
    private static List<(string Source, string Target)> Mounts(JsonNode service) =>
        [.. service["volumes"]!.AsArray().Select(v => v is JsonObject o
            ? (o["source"]!.GetValue<string>(), o["target"]!.GetValue<string>())
            : v!.GetValue<string>().Split(':') is var parts ? (parts[0], parts[1]) : default)];
}
