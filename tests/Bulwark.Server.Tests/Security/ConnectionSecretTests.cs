using Bulwark.Server.Hosting;
using Bulwark.Server.Audit;
using Bulwark.Server.Redaction;
using Bulwark.Server.Security;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Bulwark.Server.Tests.Security;

/// <summary>The passwords in the store's and Redis's connection settings are masked in every log line once the security front is configured.</summary>
public class ConnectionSecretTests
{
    [Fact]
    public void RedisAndPostgresPasswordsAreRegisteredWithTheRedactor()
    {
        // Unique per run, so no other test registered them first.
        var redisPassword = "redis-" + Guid.NewGuid().ToString("N");
        var postgresPassword = "pg-" + Guid.NewGuid().ToString("N");
        var line = $"could not reach 127.0.0.1:1 with {redisPassword}; store said {postgresPassword}";
        Assert.Equal(line, SecretRedactor.Redact(line));

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Bulwark:Quotas:Redis"] = $"127.0.0.1:1,password={redisPassword},abortConnect=false",
            ["Bulwark:Storage:Postgres"] = $"Host=127.0.0.1;Port=1;Username=u;Password={postgresPassword}",
            ["Bulwark:Security:HmacSecret"] = Convert.ToBase64String(new byte[32]),
        }).Build();
        new ServiceCollection().AddBulwarkSecurity(configuration, DataDirectory.Resolve(SecuredApp.NewDataDir("secrets")));

        Assert.Equal($"could not reach 127.0.0.1:1 with {SecretRedactor.Mask}; store said {SecretRedactor.Mask}", SecretRedactor.Redact(line));
    }
}
