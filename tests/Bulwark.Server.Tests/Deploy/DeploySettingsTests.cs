using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using Bulwark.Server.Tests.Replicas;
using Bulwark.Server.Tests.Storage;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Deploy;

/// <summary>
/// The settings the Kubernetes Deployment and the Compose stack give Bulwark are ones <c>serve</c>
/// accepts: it refuses to start on an unknown or invalid <c>Bulwark:*</c> key, so a typo in a
/// manifest would crash-loop every pod. A real <c>serve</c> is started with exactly those variables,
/// the secrets' values replaced by test ones (the test PostgreSQL and Redis), and must answer /ready
/// and /metrics with the token.
/// </summary>
public sealed class DeploySettingsTests
{
    [Fact]
    public async Task ServeStartsWithTheSettingsTheManifestsGiveIt()
    {
        var deployment = Yaml.File(DeployTools.PathOf("kubernetes", "deployment.yaml"));
        var container = deployment["spec"]!["template"]!["spec"]!["containers"]![0]!;
        var names = container["env"]!.AsArray().Select(e => e!["name"]!.GetValue<string>()).ToList();
        var values = container["env"]!.AsArray().Where(e => e!["value"] is not null)
            .ToDictionary(e => e!["name"]!.GetValue<string>(), e => e!["value"]!.GetValue<string>());

        var compose = Yaml.File(DeployTools.PathOf("compose", "docker-compose.yml"));
        foreach (var (name, value) in compose["x-bulwark"]!["environment"]!.AsObject()) { names.Add(name); values[name] = value!.GetValue<string>(); }
        // The variables init-secrets.sh writes into bulwark.env, read from the script itself.
        var script = File.ReadAllText(DeployTools.PathOf("compose", "init-secrets.sh"));
        names.AddRange(System.Text.RegularExpressions.Regex.Matches(script, @"^(Bulwark__\w+)=", System.Text.RegularExpressions.RegexOptions.Multiline).Select(m => m.Groups[1].Value));

        var token = Convert.ToHexString(RandomNumberGenerator.GetBytes(24));
        var secrets = new Dictionary<string, string>
        {
            ["Bulwark__Security__HmacSecret"] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
            ["Bulwark__Security__MetricsToken"] = token,
            ["Bulwark__Storage__Postgres"] = TestDatabases.PostgresConnectionString,
            ["Bulwark__Quotas__Redis"] = TestDatabases.RedisConfiguration,
        };
        var environment = new Dictionary<string, string>();
        foreach (var name in names.Distinct())
        {
            // Where it listens and its data directory are the test's (127.0.0.1, a free port, a temp folder).
            if (name is "BULWARK_DATA_DIR" or "Bulwark__Server__Host" or "Bulwark__Server__Port") continue;
            environment[name] = secrets.TryGetValue(name, out var secret) ? secret
                : values.TryGetValue(name, out var value) ? value
                : throw new InvalidOperationException($"{name} is neither a literal value nor one of the secrets this test knows: add it here");
        }
        Assert.Equal(secrets.Keys.Order(), environment.Keys.Where(secrets.ContainsKey).Order());
        environment["Bulwark__Storage__Schema"] = TestDatabases.NewSchemaName();

        await using var serve = await TestServe.StartAsync(environment, Fixtures.NewTempDirectory("deploy-settings"));
        using var client = serve.Client();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("ready")).StatusCode);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("metrics")).StatusCode);
        Assert.Contains("quotas in Redis", serve.Output, StringComparison.OrdinalIgnoreCase);
    }
}
