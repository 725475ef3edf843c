using System.Net;
using System.Text.Json;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Security;

namespace Bulwark.Server.Tests.Quotas;

/// <summary>
/// What a client sees of the hourly limits through a real server (the in-memory store on the server's
/// clock, which the test holds 40 minutes before the hour turns): 429s that name the limit, Retry-After
/// until the hour turns, and the <c>-hour</c> rate-limit headers.
/// </summary>
public class HourlyLimitResponseTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 15, 10, 20, 0, TimeSpan.Zero);

    private static async Task<(SecuredApp App, ManualClock Clock)> StartAsync()
    {
        var clock = new ManualClock(Start);
        return (await SecuredApp.StartAsync(SecuredApp.NewDataDir("hourly"), clock: clock), clock);
    }

    private static string Header(HttpResponseMessage response, string name) => response.Headers.GetValues(name).Single();

    private static async Task<JsonElement> ErrorAsync(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

    [Fact]
    public async Task ARequestOverTheRequestsPerHourIsRefusedUntilTheHourTurns()
    {
        var (app, clock) = await StartAsync();
        await using var _ = app;
        var key = (await app.CreateKeyAsync(new KeySpec { Name = "hourly", Limits = new KeyLimits(0, 0, 0, 0, RequestsPerHour: 2) })).Key;
        using var client = app.Client(key);

        for (var remaining = 1; remaining >= 0; remaining--)
        {
            using var ok = await client.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Equal("2", Header(ok, "x-ratelimit-limit-requests-hour"));
            Assert.Equal(remaining.ToString(System.Globalization.CultureInfo.InvariantCulture), Header(ok, "x-ratelimit-remaining-requests-hour"));
            Assert.Equal("40m0s", Header(ok, "x-ratelimit-reset-requests-hour"));
        }

        using var refused = await client.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"));
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        var error = await ErrorAsync(refused);
        Assert.Equal("requests_per_hour", error.GetProperty("code").GetString());
        Assert.Equal("Hourly request limit reached: this key allows 2 requests per hour (UTC clock hour).", error.GetProperty("message").GetString());
        Assert.Equal(TimeSpan.FromMinutes(40), refused.Headers.RetryAfter!.Delta);
        Assert.Equal("2400000", Header(refused, "retry-after-ms"));
        Assert.Equal("0", Header(refused, "x-ratelimit-remaining-requests-hour"));
        Assert.False(refused.Headers.Contains("x-ratelimit-limit-requests")); // no per-minute limit on this key

        clock.Advance(TimeSpan.FromMinutes(40));
        using var nextHour = await client.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"));
        Assert.Equal(HttpStatusCode.OK, nextHour.StatusCode);
        Assert.Equal("1", Header(nextHour, "x-ratelimit-remaining-requests-hour"));
        Assert.Equal("1h0m0s", Header(nextHour, "x-ratelimit-reset-requests-hour"));
    }

    [Fact]
    public async Task TheTokensPerHourAreReservedSettledAndRefusedWithTheirOwnCode()
    {
        var (app, _) = await StartAsync();
        await using var __ = app;
        var key = (await app.CreateKeyAsync(new KeySpec { Name = "tokens", Limits = new KeyLimits(0, 0, 0, 0, TokensPerHour: 1000) })).Key;
        using var client = app.Client(key);

        // Reserves 1 + 900 and generates nothing: settles at 1, so 999 are left, not 99.
        using (var refunded = await client.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1", 1, 900, completionTokens: 0)))
        {
            Assert.Equal(HttpStatusCode.OK, refunded.StatusCode);
            Assert.Equal("99", Header(refunded, "x-ratelimit-remaining-tokens-hour"));
        }
        using (var fits = await client.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1", 1, 898)))
        {
            Assert.Equal(HttpStatusCode.OK, fits.StatusCode);
            Assert.Equal("100", Header(fits, "x-ratelimit-remaining-tokens-hour")); // 1000 - 1 - 899: before its own settlement
            Assert.Equal("1000", Header(fits, "x-ratelimit-limit-tokens-hour"));
        }

        using var refused = await client.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1", 1, 100));
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        var error = await ErrorAsync(refused);
        Assert.Equal("tokens_per_hour", error.GetProperty("code").GetString());
        Assert.Equal("Hourly token budget reached: this key allows 1000 tokens per hour (UTC clock hour); this request needs 101.",
            error.GetProperty("message").GetString());
        Assert.Equal(TimeSpan.FromMinutes(40), refused.Headers.RetryAfter!.Delta);
        Assert.Equal("100", Header(refused, "x-ratelimit-remaining-tokens-hour"));

        using var tooLarge = await client.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1", 1, 1000));
        Assert.Equal("Request too large: it needs 1001 tokens (prompt + max_tokens) and this key allows 1000 tokens per hour.",
            (await ErrorAsync(tooLarge)).GetProperty("message").GetString());
    }
}
