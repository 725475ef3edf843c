using System.Text.Json.Nodes;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Deploy;

/// <summary>
/// deploy/kubernetes, rendered by the real kustomize inside kubectl (no cluster here, so no
/// server-side validation) and then checked as the manifests: kinds and API versions, the
/// security context, probes, secrets, that selectors select the pods, the autoscaler's metric,
/// the network policy and the ingress.
/// </summary>
public sealed class KubernetesManifestTests : IAsyncLifetime
{
    private static readonly Dictionary<string, string> ApiVersions = new()
    {
        ["Namespace"] = "v1",
        ["ServiceAccount"] = "v1",
        ["Secret"] = "v1",
        ["Service"] = "v1",
        ["Deployment"] = "apps/v1",
        ["PodDisruptionBudget"] = "policy/v1",
        ["HorizontalPodAutoscaler"] = "autoscaling/v2",
        ["NetworkPolicy"] = "networking.k8s.io/v1",
        ["Ingress"] = "networking.k8s.io/v1",
        ["ServiceMonitor"] = "monitoring.coreos.com/v1",
    };

    private readonly string _root = Fixtures.NewTempDirectory("kubernetes");
    private List<JsonNode> _rendered = [];

    public async Task InitializeAsync()
    {
        var copy = Path.Combine(_root, "kubernetes");
        DeployTools.CopyTree(DeployTools.PathOf("kubernetes"), copy);
        File.Delete(Path.Combine(copy, "secrets.env"));
        await DeployTools.SucceedAsync("bash", ["init-secrets.sh"], copy, environment: new Dictionary<string, string>
        {
            ["BULWARK_POSTGRES"] = "Host=postgres.db;Username=bulwark;Password=test-only;Database=bulwark",
            ["BULWARK_REDIS"] = "redis.db:6379,password=test-only",
        });
        var result = await DeployTools.SucceedAsync("kubectl", ["kustomize", copy]);
        _rendered = Yaml.Documents(result.Output);
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_root, true);
        return Task.CompletedTask;
    }

    private JsonNode One(string kind) => _rendered.Single(d => Kind(d) == kind);
    private JsonNode Pod => One("Deployment")["spec"]!["template"]!;
    private JsonNode Container => Pod["spec"]!["containers"]!.AsArray().Single()!;

    [Fact]
    public void KustomizeRendersEveryKindWithItsApiVersionInTheBulwarkNamespace()
    {
        Assert.Equal(ApiVersions.Keys.Order(), _rendered.Select(Kind).Order());
        foreach (var document in _rendered)
        {
            Assert.Equal(ApiVersions[Kind(document)], Text(document, "apiVersion"));
            Assert.False(string.IsNullOrEmpty(Text(document["metadata"], "name")));
            if (Kind(document) != "Namespace") Assert.Equal("bulwark", Text(document["metadata"], "namespace"));
        }
    }

    [Fact]
    public void EveryManifestFileNamesItsKindApiVersionAndName()
    {
        var files = Directory.GetFiles(DeployTools.PathOf("kubernetes"), "*.yaml").Where(f => Path.GetFileName(f) != "kustomization.yaml").ToList();
        var listed = Yaml.File(DeployTools.PathOf("kubernetes", "kustomization.yaml"))["resources"]!.AsArray().Select(r => r!.GetValue<string>()).ToHashSet();
        foreach (var file in files)
        {
            var manifest = Yaml.File(file);
            Assert.True(ApiVersions.TryGetValue(Kind(manifest), out var version), $"{file}: unexpected kind {Kind(manifest)}");
            Assert.Equal(version, Text(manifest, "apiVersion"));
            Assert.False(string.IsNullOrEmpty(Text(manifest["metadata"], "name")), file);
            Assert.Contains(Path.GetFileName(file), listed);
        }
    }

    [Fact]
    public void ThePodsRunAsNonRootOnAReadOnlyRootWithoutCapabilitiesOrTokens()
    {
        var spec = Pod["spec"]!;
        Assert.Equal("true", Text(spec["securityContext"], "runAsNonRoot"));
        Assert.NotEqual("0", Text(spec["securityContext"], "runAsUser"));
        Assert.Equal("RuntimeDefault", Text(spec["securityContext"]!["seccompProfile"], "type"));
        Assert.Equal("false", Text(spec, "automountServiceAccountToken"));
        var context = Container["securityContext"]!;
        Assert.Equal("true", Text(context, "runAsNonRoot"));
        Assert.Equal("true", Text(context, "readOnlyRootFilesystem"));
        Assert.Equal("false", Text(context, "allowPrivilegeEscalation"));
        Assert.Equal("false", Text(context, "privileged"));
        Assert.Equal(["ALL"], context["capabilities"]!["drop"]!.AsArray().Select(c => c!.GetValue<string>()));
        Assert.Null(context["capabilities"]!["add"]);
        Assert.Equal("RuntimeDefault", Text(context["seccompProfile"], "type"));
        // Everything Bulwark writes goes to /data; /tmp is for the runtime's diagnostics socket. Both are volumes.
        var mounts = Container["volumeMounts"]!.AsArray().Select(m => Text(m, "mountPath")).ToList();
        Assert.Contains("/data", mounts);
        Assert.Contains("/tmp", mounts);
        Assert.Equal("/data", Env("BULWARK_DATA_DIR"));
        Assert.DoesNotContain("hostPath", spec["volumes"]!.ToJsonString());
        Assert.Equal("false", Text(One("ServiceAccount"), "automountServiceAccountToken"));
        Assert.Equal("restricted", One("Namespace")["metadata"]!["labels"]!["pod-security.kubernetes.io/enforce"]!.GetValue<string>());
    }

    [Fact]
    public void ProbesUseHealthAndTheGeneratingReadyWithMinutesForTheModelToLoad()
    {
        var port = Container["ports"]!.AsArray().Single()!;
        Assert.Equal("http", Text(port, "name"));
        Assert.Equal("8000", Text(port, "containerPort"));
        Assert.Equal(Text(port, "containerPort"), Env("Bulwark__Server__Port"));
        Assert.Equal("0.0.0.0", Env("Bulwark__Server__Host"));
        var startup = Container["startupProbe"]!;
        Assert.Equal("/health", Text(startup["httpGet"], "path"));
        var startupBudget = int.Parse(Text(startup, "periodSeconds")) * int.Parse(Text(startup, "failureThreshold"));
        Assert.True(startupBudget >= 300, $"the startup probe gives the model {startupBudget} s to load; loading can take minutes");
        Assert.Equal("/ready", Text(Container["readinessProbe"]!["httpGet"], "path"));
        Assert.Equal("/health", Text(Container["livenessProbe"]!["httpGet"], "path"));
        foreach (var probe in new[] { "startupProbe", "readinessProbe", "livenessProbe" })
            Assert.Equal("http", Text(Container[probe]!["httpGet"], "port"));
        // Draining: the pod outlives Bulwark:Server:DrainTimeout (30 s).
        Assert.True(int.Parse(Text(Pod["spec"], "terminationGracePeriodSeconds")) > 30);
        Assert.NotNull(Container["resources"]!["requests"]!["cpu"]);
        Assert.NotNull(Container["resources"]!["requests"]!["memory"]);
        Assert.NotNull(Container["resources"]!["limits"]!["memory"]);
    }

    [Fact]
    public void SecretSettingsComeOnlyFromTheGeneratedSecret()
    {
        var secret = One("Secret");
        var keys = secret["data"]!.AsObject().Select(p => p.Key).Order().ToList();
        Assert.Equal(["Bulwark__Quotas__Redis", "Bulwark__Security__HmacSecret", "Bulwark__Security__MetricsToken", "Bulwark__Storage__Postgres"], keys);
        foreach (var key in keys)
        {
            var variable = Container["env"]!.AsArray().Single(e => Text(e, "name") == key)!;
            Assert.Null(variable["value"]);
            Assert.Equal(Text(secret["metadata"], "name"), Text(variable["valueFrom"]!["secretKeyRef"], "name"));
            Assert.Equal(key, Text(variable["valueFrom"]!["secretKeyRef"], "key"));
        }
        var hmac = Convert.FromBase64String(System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(Text(secret["data"], "Bulwark__Security__HmacSecret"))));
        Assert.True(hmac.Length >= 32);
        Assert.Contains("secrets.env", File.ReadAllLines(DeployTools.PathOf("kubernetes", ".gitignore")));
        // No committed manifest carries a secret's value.
        foreach (var file in Directory.GetFiles(DeployTools.PathOf("kubernetes"), "*.yaml", SearchOption.AllDirectories))
            Assert.DoesNotMatch("(?i)(password=|hmacsecret: |metricstoken: )", File.ReadAllText(file));
    }

    [Fact]
    public void EverySelectorSelectsTheServersPods()
    {
        var podLabels = Pod["metadata"]!["labels"]!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<string>());
        void Selects(JsonNode? selector, string what)
        {
            Assert.NotNull(selector);
            foreach (var (key, value) in selector!.AsObject())
                Assert.True(podLabels.TryGetValue(key, out var v) && v == value!.GetValue<string>(), $"{what} selects {key}={value}, which the pods do not carry");
        }
        Selects(One("Deployment")["spec"]!["selector"]!["matchLabels"], "the Deployment");
        Selects(One("Service")["spec"]!["selector"], "the Service");
        Selects(One("PodDisruptionBudget")["spec"]!["selector"]!["matchLabels"], "the PodDisruptionBudget");
        Selects(One("NetworkPolicy")["spec"]!["podSelector"]!["matchLabels"], "the NetworkPolicy");

        var service = One("Service");
        var serviceLabels = service["metadata"]!["labels"]!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<string>());
        var monitor = One("ServiceMonitor");
        foreach (var (key, value) in monitor["spec"]!["selector"]!["matchLabels"]!.AsObject())
            Assert.Equal(value!.GetValue<string>(), serviceLabels.GetValueOrDefault(key));
        var endpoint = monitor["spec"]!["endpoints"]!.AsArray().Single()!;
        Assert.Contains(service["spec"]!["ports"]!.AsArray(), p => Text(p, "name") == Text(endpoint, "port"));
        Assert.Equal("/metrics", Text(endpoint, "path"));
        Assert.Equal(Text(One("Secret")["metadata"], "name"), Text(endpoint["authorization"]!["credentials"], "name"));
        Assert.Equal("Bulwark__Security__MetricsToken", Text(endpoint["authorization"]!["credentials"], "key"));
        // The rules and the dashboard read job="bulwark": the job label is the Service's name.
        Assert.Equal("bulwark", Text(service["metadata"], "name"));
        Assert.Null(monitor["spec"]!["jobLabel"]);
        Assert.Equal("1", Text(One("PodDisruptionBudget")["spec"], "maxUnavailable"));
    }

    [Fact]
    public void TheAutoscalerScalesTheDeploymentOnTheQueueDepthTheAdapterServes()
    {
        var hpa = One("HorizontalPodAutoscaler")["spec"]!;
        Assert.Equal("Deployment", Text(hpa["scaleTargetRef"], "kind"));
        Assert.Equal(Text(One("Deployment")["metadata"], "name"), Text(hpa["scaleTargetRef"], "name"));
        Assert.True(int.Parse(Text(hpa, "minReplicas")) >= 2);
        var metric = hpa["metrics"]!.AsArray().Single()!;
        Assert.Equal("Pods", Text(metric, "type"));
        var name = Text(metric["pods"]!["metric"], "name");
        Assert.Equal("AverageValue", Text(metric["pods"]!["target"], "type"));

        var rule = Yaml.File(DeployTools.PathOf("kubernetes", "prometheus-adapter", "config.yaml"))["rules"]!.AsArray().Single()!;
        Assert.Equal(name, Text(rule["name"], "as"));
        // The ServiceMonitor's targets carry the namespace and pod labels the adapter maps to resources.
        Assert.Empty(MetricCatalog.Problems(Text(rule, "seriesQuery"), "namespace", "pod"));
        Assert.Equal("gauge", MetricCatalog.Metrics[name].Type);
        Assert.Equal("pod", Text(rule["resources"]!["overrides"]!["pod"], "resource"));
    }

    [Fact]
    public void TheNetworkPolicyAdmitsOnlyTheIngressAndMonitoringNamespacesAndLetsOutOnlyWhatBulwarkCalls()
    {
        var spec = One("NetworkPolicy")["spec"]!;
        Assert.Equal(["Egress", "Ingress"], spec["policyTypes"]!.AsArray().Select(t => t!.GetValue<string>()).Order());
        var sources = new List<string>();
        foreach (var rule in spec["ingress"]!.AsArray())
        {
            Assert.Equal(["8000"], rule!["ports"]!.AsArray().Select(p => Text(p, "port")));
            foreach (var peer in rule["from"]!.AsArray())
            {
                Assert.Null(peer!["ipBlock"]);
                sources.Add(Text(peer["namespaceSelector"]!["matchLabels"], "kubernetes.io/metadata.name"));
            }
        }
        Assert.Equal(["ingress-nginx", "monitoring"], sources.Order());

        var egress = spec["egress"]!.AsArray();
        Assert.All(egress, rule =>
        {
            Assert.NotEmpty(rule!["to"]!.AsArray()); // an empty "to" would allow every destination
            Assert.NotEmpty(rule["ports"]!.AsArray());
            Assert.DoesNotContain("0.0.0.0/0", rule.ToJsonString());
        });
        var ports = egress.SelectMany(r => r!["ports"]!.AsArray().Select(p => $"{Text(p, "port")}/{Text(p, "protocol")}")).ToHashSet();
        Assert.Superset(new HashSet<string> { "53/UDP", "53/TCP", "6379/TCP", "5432/TCP" }, ports);
    }

    [Fact]
    public void TheIngressRoutesOnlyTheInferenceApi()
    {
        var paths = One("Ingress")["spec"]!["rules"]!.AsArray().SelectMany(r => r!["http"]!["paths"]!.AsArray()).ToList();
        Assert.Equal(["/detokenize", "/generate", "/generate_stream", "/tokenize", "/v1"], paths.Select(p => Text(p, "path")).Order());
        Assert.All(paths, p => Assert.Equal(Text(One("Service")["metadata"], "name"), Text(p!["backend"]!["service"], "name")));
    }

    private string Env(string name) => Text(Container["env"]!.AsArray().Single(e => Text(e, "name") == name), "value");

    private static string Kind(JsonNode document) => Text(document, "kind");

    private static string Text(JsonNode? node, string property) =>
        node?[property]?.GetValue<string>() ?? throw new KeyNotFoundException($"no '{property}' in {node?.ToJsonString() ?? "null"}");
}
