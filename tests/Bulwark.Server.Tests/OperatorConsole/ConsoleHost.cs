using System.Net;
using System.Text.RegularExpressions;
using Bulwark.Server.Audit;
using Bulwark.Server.Hosting;
using Bulwark.Server.OperatorConsole;
using Bulwark.Server.Registry;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Hosting;
using Bulwark.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Tests.OperatorConsole;

/// <summary>
/// A real <c>bulwark serve</c> (<see cref="ServeHost"/>) on 127.0.0.1 with the console on: the models of
/// <see cref="ModelAdminTests.RegisterAsync"/> (alpha v1 serving, alpha v2, beta, gamma), answered by <see cref="ScriptedBackend"/>s that reply "name vN." so a page or
/// a reply shows which version served; an admin key and an API key. With <c>clock</c>, the console's sessions and
/// sign-in throttle run on that clock (the rest of the server on the system's).
/// </summary>
public sealed partial class ConsoleHost : IAsyncDisposable
{
    private ConsoleHost(ServeHost host, IssuedKey admin, IssuedKey api, string startupReport, IReadOnlyList<ScriptedBackend> backends)
    {
        Backends = backends;
        StartupReport = startupReport;
        Host = host;
        Admin = admin;
        Api = api;
    }

    public ServeHost Host { get; }

    /// <summary>Every backend the host loaded, in order (a test reads the requests one received).</summary>
    public IReadOnlyList<ScriptedBackend> Backends { get; }

    /// <summary>What serve printed when it started.</summary>
    public string StartupReport { get; }
    public IssuedKey Admin { get; }
    public IssuedKey Api { get; }
    public Uri Address => Host.Address;

    public T Get<T>() where T : notnull => Host.App.Services.GetRequiredService<T>();

    /// <param name="beforeEachToken">Given to every backend (<see cref="ScriptedBackend.BeforeEachToken"/>): tests hold a stream there.</param>
    public static async Task<ConsoleHost> StartAsync(Dictionary<string, string?>? settings = null, TimeProvider? clock = null, string? reply = null,
        Func<CancellationToken, Task>? beforeEachToken = null)
    {
        var dataDir = Fixtures.NewTempDirectory("console");
        await ModelAdminTests.RegisterAsync(ModelRegistry.Open(DataDirectory.Resolve(dataDir).EnsureCreated()));
        var builder = ModelAdminTests.Builder(dataDir, settings);
        if (clock is not null)
        {
            builder.Services.AddSingleton(sp => new ConsoleSessions(sp.GetRequiredService<ConsoleOptions>(), clock));
            builder.Services.AddSingleton(sp => new SignInThrottle(sp.GetRequiredService<ConsoleOptions>(), clock));
        }
        var output = new StringWriter();
        var backends = new List<ScriptedBackend>();
        var host = await ServeHost.StartAsync(builder, output, (source, _) =>
        {
            var (name, version) = source.RegisteredAs!.Value;
            var backend = new ScriptedBackend(id: source.Id) { Reply = reply ?? $"{name} {version}. ", BeforeEachToken = beforeEachToken };
            lock (backends) backends.Add(backend);
            return backend;
        });
        var issuer = host.App.Services.GetRequiredService<KeyIssuer>();
        var api = await issuer.CreateAsync(new KeySpec { Name = "api" }, "tests");
        return new ConsoleHost(host, host.InitialAdminKey!, api, output.ToString(), backends);
    }

    /// <summary>A client that follows no redirect and keeps no cookies of its own (tests set them explicitly).</summary>
    public HttpClient Raw() => new(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = Address };

    /// <summary>Signs in with <paramref name="key"/> (the admin key by default) and returns the session's cookie and CSRF token.</summary>
    public async Task<ConsoleSignIn> SignInAsync(string? key = null)
    {
        using var client = Raw();
        using var response = await client.PostAsync("console/sign-in", Form(("key", key ?? Admin.Key)));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        var cookie = response.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(ConsoleAccess.CookieName + "=", StringComparison.Ordinal));
        var session = new ConsoleSignIn(this, cookie.Split(';')[0]);
        var page = await session.GetStringAsync("console");
        session.Csrf = CsrfMeta().Match(page) is { Success: true } m ? WebUtility.HtmlDecode(m.Groups[1].Value) : throw new InvalidOperationException("no csrf meta on the overview");
        return session;
    }

    /// <summary>An admin key of the right shape whose secret is wrong (the last four characters changed).</summary>
    public string WrongAdminKey => Admin.Key[..^4] + (Admin.Key.EndsWith("aaaa", StringComparison.Ordinal) ? "bbbb" : "aaaa");

    public static FormUrlEncodedContent Form(params (string Name, string Value)[] fields) =>
        new(fields.Select(f => new KeyValuePair<string, string>(f.Name, f.Value)));

    public async Task<IReadOnlyList<AuditRecord>> AuditAsync()
    {
        await Get<AuditWriter>().FlushAsync();
        return await Get<SecurityStorage>().Audit.ReadRecentAsync(500);
    }

    [GeneratedRegex("<meta name=\"csrf-token\" content=\"([^\"]*)\">")]
    private static partial Regex CsrfMeta();

    public ValueTask DisposeAsync() => Host.DisposeAsync();
}

/// <summary>A signed-in console session: its cookie (<c>name=value</c>) and CSRF token, sent by hand so tests control both.</summary>
public sealed class ConsoleSignIn(ConsoleHost host, string cookie)
{
    public string Cookie { get; } = cookie;
    public string Csrf { get; set; } = "";

    public async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, HttpContent? content = null, string? cookie = null,
        Action<HttpRequestMessage>? edit = null)
    {
        using var client = host.Raw();
        var request = new HttpRequestMessage(method, path) { Content = content };
        if ((cookie ?? Cookie) is { Length: > 0 } sent) request.Headers.Add("Cookie", sent);
        edit?.Invoke(request);
        return await client.SendAsync(request);
    }

    public async Task<string> GetStringAsync(string path)
    {
        using var response = await SendAsync(HttpMethod.Get, path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    /// <summary>A form post carrying the session's CSRF token (unless <paramref name="csrf"/> says otherwise; "" sends none).</summary>
    public Task<HttpResponseMessage> PostFormAsync(string path, string? csrf = null, params (string Name, string Value)[] fields)
    {
        var token = csrf ?? Csrf;
        var all = token.Length == 0 ? fields : [(ConsoleAccess.CsrfField, token), .. fields];
        return SendAsync(HttpMethod.Post, path, ConsoleHost.Form(all));
    }
}
