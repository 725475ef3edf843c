using System.Net;
using Bulwark.Server.OperatorConsole;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Security;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Bulwark.Server.Tests.OperatorConsole;

/// <summary>The console's sign-in, session, CSRF and header rules, over HTTP against a real <c>bulwark serve</c>.</summary>
public sealed class ConsoleSessionTests
{
    [Fact]
    public async Task SignInWithAnAdminKeyGivesAnHttpOnlyStrictCookieForTheConsoleOnly()
    {
        await using var host = await ConsoleHost.StartAsync();
        using var client = host.Raw();
        using var response = await client.PostAsync("console/sign-in", ConsoleHost.Form(("key", host.Admin.Key)));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/console", response.Headers.Location!.OriginalString);
        var cookie = response.Headers.GetValues("Set-Cookie").Single();
        var attributes = cookie.Split(';').Select(a => a.Trim().ToLowerInvariant()).ToList();
        Assert.Contains("httponly", attributes);
        Assert.Contains("samesite=strict", attributes);
        Assert.Contains("path=/console", attributes);
        // Plain HTTP here: Secure would make the browser drop it; under TLS it is set (ConsoleEndpoints.Cookie).
        Assert.DoesNotContain("secure", attributes);
        Assert.DoesNotContain(host.Admin.Key, cookie);
        Assert.DoesNotContain(attributes, a => a.StartsWith("expires", StringComparison.Ordinal) || a.StartsWith("max-age", StringComparison.Ordinal));

        var session = await host.SignInAsync();
        Assert.Contains("admin key " + host.Admin.Record.Id, await session.GetStringAsync("console"));
        Assert.Contains($"  console    {host.Address.ToString().TrimEnd('/')}/console (sign in with an admin key", host.StartupReport);
        // The key is nowhere in what the browser gets.
        Assert.DoesNotContain(host.Admin.Key, await session.GetStringAsync("console"));
    }

    [Fact]
    public async Task WithoutASessionPagesSendToSignInAndTheFiguresAnswer401()
    {
        await using var host = await ConsoleHost.StartAsync();
        using var client = host.Raw();
        using (var page = await client.GetAsync("console"))
        {
            Assert.Equal(HttpStatusCode.Redirect, page.StatusCode);
            Assert.Equal("/console/sign-in", page.Headers.Location!.OriginalString);
        }
        using (var forged = new HttpRequestMessage(HttpMethod.Get, "console"))
        {
            forged.Headers.Add("Cookie", ConsoleAccess.CookieName + "=not-a-session");
            using var page = await client.SendAsync(forged);
            Assert.Equal(HttpStatusCode.Redirect, page.StatusCode);
        }
        // An admin key as a bearer does not open the console: it has its own sign-in.
        using (var bearer = new HttpRequestMessage(HttpMethod.Get, "console"))
        {
            bearer.Headers.Authorization = new("Bearer", host.Admin.Key);
            using var page = await client.SendAsync(bearer);
            Assert.Equal(HttpStatusCode.Redirect, page.StatusCode);
        }
        using var signIn = await client.GetAsync("console/sign-in");
        Assert.Equal(HttpStatusCode.OK, signIn.StatusCode);
    }

    [Fact]
    public async Task EveryConsoleRouteButSignInAndAssetsRefusesWithoutASession()
    {
        await using var host = await ConsoleHost.StartAsync();
        var routes = host.Get<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText!.StartsWith("/console", StringComparison.Ordinal) && e.Metadata.GetMetadata<ConsolePublicAttribute>() is null)
            .SelectMany(e => (e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? ["GET"]).Select(m => (Method: m, Path: Concrete(e.RoutePattern.RawText!))))
            .ToList();
        Assert.True(routes.Count >= 2, $"expected the console's session routes, found {routes.Count}");
        using var client = host.Raw();
        foreach (var (method, path) in routes)
        {
            using var response = await client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path) { Content = method == "GET" ? null : ConsoleHost.Form() });
            var expected = path.StartsWith("/console/api", StringComparison.Ordinal) ? HttpStatusCode.Unauthorized : HttpStatusCode.Redirect;
            Assert.True(response.StatusCode == expected, $"{method} {path} answered {response.StatusCode} without a session");
        }
    }

    private static string Concrete(string template) => System.Text.RegularExpressions.Regex.Replace(template, "\\{[^}]+\\}", "x");

    [Fact]
    public async Task SignInRefusesApiKeysAndWrongKeysAndAuditsEveryAttemptWithoutTheKey()
    {
        await using var host = await ConsoleHost.StartAsync();
        using var client = host.Raw();
        var wrong = host.WrongAdminKey;
        foreach (var key in new[] { host.Api.Key, wrong, "not a key" })
        {
            using var response = await client.PostAsync("console/sign-in", ConsoleHost.Form(("key", key)));
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.False(response.Headers.Contains("Set-Cookie"));
            Assert.Contains("not a valid admin key", await response.Content.ReadAsStringAsync());
        }
        await host.SignInAsync();

        var audit = await host.AuditAsync();
        var refused = audit.Where(r => r.Kind == "console.sign_in_refused").Select(r => r.Reason).ToList();
        Assert.Equal(["invalid_key:malformed", "invalid_key:secret", "not_admin"], refused.Order().ToList());
        var signedIn = Assert.Single(audit, r => r.Kind == "console.signed_in");
        Assert.Equal(host.Admin.Record.Id, signedIn.KeyId);
        Assert.Equal("127.0.0.1", signedIn.ClientIp);
        foreach (var r in audit)
            foreach (var field in new[] { r.Detail, r.Reason, r.Route, r.KeyId, r.Model })
                Assert.True(field is null || (!field.Contains(host.Admin.Key) && !field.Contains(host.Api.Key) && !field.Contains(wrong)), $"a key in audit record {r.Kind}");
    }

    [Fact]
    public async Task SignInAttemptsPerAddressAreLimitedAtTheConfiguredNumberPerWindow()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var host = await ConsoleHost.StartAsync(new() { ["Bulwark:Console:SignInAttempts"] = "3", ["Bulwark:Console:SignInWindow"] = "00:01:00" }, clock);
        using var client = host.Raw();
        var retryAfter = new List<string>();
        async Task<HttpStatusCode> Attempt(string key)
        {
            using var response = await client.PostAsync("console/sign-in", ConsoleHost.Form(("key", key)));
            if (response.StatusCode == HttpStatusCode.TooManyRequests) retryAfter.Add(response.Headers.GetValues("Retry-After").Single());
            return response.StatusCode;
        }
        var wrong = host.WrongAdminKey;
        // Below and at the limit: each attempt is judged on its key.
        Assert.Equal(HttpStatusCode.Unauthorized, await Attempt(wrong));
        Assert.Equal(HttpStatusCode.Unauthorized, await Attempt(wrong));
        Assert.Equal(HttpStatusCode.Redirect, await Attempt(host.Admin.Key));
        // Above it: refused before the key is even read, the right one too.
        Assert.Equal(HttpStatusCode.TooManyRequests, await Attempt(host.Admin.Key));
        clock.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(HttpStatusCode.TooManyRequests, await Attempt(host.Admin.Key));
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(HttpStatusCode.Redirect, await Attempt(host.Admin.Key));
        Assert.Equal(["60", "1"], retryAfter);
        Assert.Equal(2, (await host.AuditAsync()).Count(r => r.Kind == "console.sign_in_refused" && r.Reason == "rate_limited"));
    }

    [Fact]
    public async Task StateChangesNeedTheSessionsCsrfTokenAndThisServersOrigin()
    {
        await using var host = await ConsoleHost.StartAsync();
        var session = await host.SignInAsync();
        var other = await host.SignInAsync();
        Assert.NotEqual(session.Csrf, other.Csrf);
        foreach (var csrf in new[] { "", "wrong", other.Csrf })
        {
            using var refused = await session.PostFormAsync("console/sign-out", csrf);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }
        using (var header = await session.SendAsync(HttpMethod.Post, "console/sign-out", ConsoleHost.Form(), edit: r => r.Headers.Add(ConsoleAccess.CsrfHeader, "wrong")))
            Assert.Equal(HttpStatusCode.Forbidden, header.StatusCode);
        foreach (var origin in new[] { "https://evil.example", "null", $"http://localhost:1" })
        {
            using var crossSite = await session.SendAsync(HttpMethod.Post, "console/sign-out", ConsoleHost.Form((ConsoleAccess.CsrfField, session.Csrf)),
                edit: r => r.Headers.Add("Origin", origin));
            Assert.Equal(HttpStatusCode.Forbidden, crossSite.StatusCode);
        }
        foreach (var (site, origin) in new[] { ("cross-site", "https://evil.example"), ("same-site", "null"), ("cross-site", "null"), ("none", "") })
        {
            using var crossSite = await session.SendAsync(HttpMethod.Post, "console/sign-out", ConsoleHost.Form((ConsoleAccess.CsrfField, session.Csrf)), edit: r =>
            {
                r.Headers.Add("Sec-Fetch-Site", site);
                if (origin.Length > 0) r.Headers.Add("Origin", origin);
            });
            Assert.True(crossSite.StatusCode == HttpStatusCode.Forbidden, $"Sec-Fetch-Site {site}, Origin '{origin}' answered {crossSite.StatusCode}");
        }
        // Still signed in after all of that.
        await session.GetStringAsync("console");

        // What a browser sends for a form on a no-referrer page of this server: Origin null, Sec-Fetch-Site same-origin.
        using var signOut = await session.SendAsync(HttpMethod.Post, "console/sign-out", ConsoleHost.Form((ConsoleAccess.CsrfField, session.Csrf)), edit: r =>
        {
            r.Headers.Add("Origin", "null");
            r.Headers.Add("Sec-Fetch-Site", "same-origin");
        });
        Assert.Equal(HttpStatusCode.Redirect, signOut.StatusCode);
        Assert.Contains(signOut.Headers.GetValues("Set-Cookie"), c => c.StartsWith(ConsoleAccess.CookieName + "=;", StringComparison.Ordinal));
        // Sign-out ended the session on the server: the old cookie opens nothing, even if a browser kept it.
        using var after = await session.SendAsync(HttpMethod.Get, "console");
        Assert.Equal(HttpStatusCode.Redirect, after.StatusCode);
        await other.GetStringAsync("console");
        Assert.Contains(await host.AuditAsync(), r => r.Kind == "console.signed_out" && r.KeyId == host.Admin.Record.Id);
    }

    [Theory]
    [InlineData(null, null, true)]
    [InlineData("same-origin", null, true)]
    [InlineData("same-origin", "null", true)]
    [InlineData("same-origin", "http://127.0.0.1:8000", true)]
    [InlineData(null, "http://127.0.0.1:8000", true)]
    [InlineData(null, "null", false)]
    [InlineData(null, "http://127.0.0.1:8001", false)]
    [InlineData("same-origin", "https://127.0.0.1:8000", false)]
    [InlineData("same-site", null, false)]
    [InlineData("cross-site", "http://127.0.0.1:8000", false)]
    [InlineData("none", null, false)]
    public void AStateChangeMustComeFromThisServersOwnPages(string? site, string? origin, bool accepted)
    {
        var context = new Microsoft.AspNetCore.Http.DefaultHttpContext();
        context.Request.Scheme = "http";
        context.Request.Host = new Microsoft.AspNetCore.Http.HostString("127.0.0.1:8000");
        if (site is not null) context.Request.Headers["Sec-Fetch-Site"] = site;
        if (origin is not null) context.Request.Headers.Origin = origin;
        Assert.Equal(accepted, ConsoleAccess.SameOrigin(context.Request));
    }

    [Fact]
    public async Task ASessionEndsAfterItsIdleTimeoutAndAfterItsLifetime()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var host = await ConsoleHost.StartAsync(new() { ["Bulwark:Console:SessionIdleTimeout"] = "00:10:00", ["Bulwark:Console:SessionLifetime"] = "00:25:00" }, clock);
        async Task<bool> Live(ConsoleSignIn s)
        {
            using var response = await s.SendAsync(HttpMethod.Get, "console");
            return response.StatusCode == HttpStatusCode.OK;
        }

        var idle = await host.SignInAsync();
        clock.Advance(TimeSpan.FromMinutes(10) - TimeSpan.FromSeconds(1));
        Assert.True(await Live(idle), "ended before its idle timeout");
        clock.Advance(TimeSpan.FromMinutes(10));
        Assert.False(await Live(idle), "still live after ten idle minutes");

        var busy = await host.SignInAsync();
        for (var minute = 5; minute < 25; minute += 5)
        {
            clock.Advance(TimeSpan.FromMinutes(5));
            Assert.True(await Live(busy), $"a session in use ended at minute {minute} of 25");
        }
        clock.Advance(TimeSpan.FromMinutes(5));
        Assert.False(await Live(busy), "a session in use outlived its 25-minute lifetime");
    }

    [Fact]
    public async Task RevokingTheAdminKeyEndsItsSessions()
    {
        await using var host = await ConsoleHost.StartAsync();
        var other = await host.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "ops", IsAdmin = true }, "tests");
        var session = await host.SignInAsync(other.Key);
        await host.Get<KeyIssuer>().RevokeAsync(other.Record.Id, "tests");
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(2), async () =>
        {
            using var response = await session.SendAsync(HttpMethod.Get, "console");
            return response.StatusCode == HttpStatusCode.Redirect;
        }), "the session of a revoked admin key still opened the console");
    }

    [Fact]
    public async Task EveryConsoleAnswerCarriesTheSecurityHeaders()
    {
        await using var host = await ConsoleHost.StartAsync();
        var session = await host.SignInAsync();
        var answers = new List<(string What, HttpResponseMessage Response)>
        {
            ("sign-in page", await session.SendAsync(HttpMethod.Get, "console/sign-in", cookie: "")),
            ("page", await session.SendAsync(HttpMethod.Get, "console")),
            ("redirect", await session.SendAsync(HttpMethod.Get, "console", cookie: "")),
            ("stylesheet", await session.SendAsync(HttpMethod.Get, "console/assets/console.css")),
            ("script", await session.SendAsync(HttpMethod.Get, "console/assets/console.js")),
            ("unknown page", await session.SendAsync(HttpMethod.Get, "console/no/such/page")),
            ("refusal", await session.PostFormAsync("console/sign-out", "wrong")),
        };
        foreach (var (what, response) in answers)
        {
            var headers = response.Headers;
            Assert.True(headers.TryGetValues("Content-Security-Policy", out var csp), $"{what}: no CSP");
            Assert.Equal(ConsoleAccess.ContentSecurityPolicy, csp!.Single());
            Assert.Equal("DENY", headers.GetValues("X-Frame-Options").Single());
            Assert.Equal("nosniff", headers.GetValues("X-Content-Type-Options").Single());
            Assert.Equal("no-referrer", headers.GetValues("Referrer-Policy").Single());
            var cache = headers.CacheControl!.ToString();
            Assert.True(what is "stylesheet" or "script" ? cache == "no-cache" : cache == "no-store", $"{what}: Cache-Control {cache}");
            response.Dispose();
        }
        Assert.Equal(HttpStatusCode.NotFound, (await session.SendAsync(HttpMethod.Get, "console/assets/other.js")).StatusCode);
    }

    [Fact]
    public async Task TheConsoleIsOffWhenDisabled()
    {
        await using var host = await ConsoleHost.StartAsync(new() { ["Bulwark:Console:Enabled"] = "false" });
        using var client = host.Raw();
        using var response = await client.GetAsync("console/sign-in");
        // Not mapped: an unknown path, which needs a key like any other.
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Null(host.Host.App.Services.GetService<ConsoleSessions>());
        Assert.Contains("  console    off (Bulwark:Console:Enabled=false)", host.StartupReport);
    }

    [Theory]
    [InlineData(true, false, true, true)]
    [InlineData(true, false, false, false)]
    [InlineData(true, true, false, true)]
    [InlineData(false, true, true, false)]
    public void TheConsoleIsServedBeyondLoopbackOnlyWhenAllowed(bool enabled, bool allowRemote, bool loopbackOnly, bool served) =>
        Assert.Equal(served, new ConsoleOptions { Enabled = enabled, AllowRemote = allowRemote }.ServedWhen(loopbackOnly));

    [Theory]
    [InlineData("SessionIdleTimeout", "00:00:30")]
    [InlineData("SessionLifetime", "00:05:00")]
    [InlineData("SignInAttempts", "0")]
    [InlineData("MaxSessions", "0")]
    public void OutOfRangeSettingsStopStartUp(string name, string value)
    {
        var builder = Bulwark.Server.Hosting.BulwarkServer.CreateBuilder([], new Dictionary<string, string?> { ["Bulwark:Console:" + name] = value });
        var e = Assert.Throws<ServerConfigurationException>(() => Bulwark.Server.Hosting.ServerSettings.Read(builder.Configuration));
        Assert.Contains("Bulwark:Console:" + name, e.Message);
    }
}
