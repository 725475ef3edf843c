using System.Security.Cryptography;
using Bulwark.Bench.Http;
using Bulwark.Server.Incidents;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Cli;
using Bulwark.Server.Tests.Storage;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Replicas;

/// <summary>
/// Two <c>bulwark serve</c> processes (replicas A and B) sharing a fresh PostgreSQL schema, a fresh
/// Redis key prefix and one HMAC secret, serving the demo model. The test side opens the same store
/// to make keys, as <c>bulwark keys create</c> would, before the servers start (so neither prints a
/// first-start admin key).
/// </summary>
public sealed class ServeProcessPair : IAsyncLifetime
{
    /// <summary>A small KV cache: the demo model and a few short requests need little, and two replicas share the machine.</summary>

    private SecurityStorage? _storage;
    private ServeProcess? _a, _b;

    internal ServeProcess A => _a ?? throw new InvalidOperationException("not started");
    internal ServeProcess B => _b ?? throw new InvalidOperationException("not started");
    internal KeyIssuer Keys { get; private set; } = null!;
    internal IncidentControls Incidents { get; private set; } = null!;

    /// <summary>An admin key both replicas accept.</summary>
    internal string AdminKey { get; private set; } = "";

    public async Task InitializeAsync()
    {
        var secret = RandomNumberGenerator.GetBytes(32);
        var storage = TestDatabases.Options(TestDatabases.Postgres);
        _storage = await SecurityStorage.OpenAsync(DataDirectory.Resolve(Fixtures.NewTempDirectory("pair-store")).EnsureCreated(), storage);
        Keys = new KeyIssuer(_storage, new ApiKeyHasher(secret), TimeProvider.System);
        Incidents = new IncidentControls(_storage, TimeProvider.System);
        AdminKey = (await Keys.CreateAsync(new KeySpec { Name = "ops", Tenant = "admin", IsAdmin = true }, "test")).Key;

        var environment = new Dictionary<string, string>
        {
            ["Bulwark__Storage__Postgres"] = storage.Postgres!,
            ["Bulwark__Storage__Schema"] = storage.Schema,
            ["Bulwark__Quotas__Redis"] = TestDatabases.RedisConfiguration,
            ["Bulwark__Quotas__RedisPrefix"] = $"bulwark-test-{Guid.NewGuid():N}:",
            ["Bulwark__Security__HmacSecret"] = Convert.ToBase64String(secret),
        };
        var a = TestServe.StartAsync(environment, Fixtures.NewTempDirectory("replica-a"));
        var b = TestServe.StartAsync(environment, Fixtures.NewTempDirectory("replica-b"));
        // Both are awaited before either can fail the fixture, so neither process is left running.
        await Task.WhenAll(a.ContinueWith(_ => { }), b.ContinueWith(_ => { }));
        _a = a.IsCompletedSuccessfully ? a.Result : null;
        _b = b.IsCompletedSuccessfully ? b.Result : null;
        if (_a is null || _b is null)
        {
            await DisposeAsync();
            await Task.WhenAll(a, b); // rethrows the start failure with what the process printed
        }
    }

    public async Task DisposeAsync()
    {
        if (_a is not null) await _a.DisposeAsync();
        if (_b is not null) await _b.DisposeAsync();
        if (_storage is not null) await _storage.DisposeAsync();
        (_a, _b, _storage) = (null, null, null);
    }
}
