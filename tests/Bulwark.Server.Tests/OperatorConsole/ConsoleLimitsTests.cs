using System.Net;
using Bulwark.Server.OperatorConsole;
using Microsoft.Extensions.Time.Testing;

namespace Bulwark.Server.Tests.OperatorConsole;

/// <summary>The console's in-memory limits: sessions held at once, addresses the sign-in throttle tracks.</summary>
public sealed class ConsoleLimitsTests
{
    [Fact]
    public void SessionsBeyondTheCapEndTheOldestFirst()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var sessions = new ConsoleSessions(new ConsoleOptions { MaxSessions = 3 }, clock);
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add(sessions.Start("key" + i).Id);
            clock.Advance(TimeSpan.FromSeconds(1));
        }
        // At the cap: all live.
        Assert.Equal(3, sessions.Count);
        Assert.All(ids, id => Assert.NotNull(sessions.Find(id)));
        // Above it: the oldest sign-in goes, the rest stay.
        ids.Add(sessions.Start("key3").Id);
        Assert.Equal(3, sessions.Count);
        Assert.Null(sessions.Find(ids[0]));
        Assert.All(ids.Skip(1), id => Assert.NotNull(sessions.Find(id)));
        // Ended sessions free their place before anyone is pushed out.
        clock.Advance(TimeSpan.FromMinutes(31));
        var fresh = sessions.Start("key4").Id;
        Assert.Equal(1, sessions.Count);
        Assert.NotNull(sessions.Find(fresh));
    }

    [Fact]
    public void AnIdIsNeitherStoredNorAcceptedInAnyOtherForm()
    {
        var sessions = new ConsoleSessions(new ConsoleOptions(), TimeProvider.System);
        var (id, session) = sessions.Start("k");
        Assert.DoesNotContain(id, session.Handle);
        Assert.NotEqual(id, session.CsrfToken);
        Assert.Null(sessions.Find(session.Handle));
        Assert.Null(sessions.Find(id.ToUpperInvariant() == id ? id.ToLowerInvariant() : id.ToUpperInvariant()));
        Assert.Null(sessions.Find(id + "x"));
        Assert.Null(sessions.Find(new string('a', 101)));
        Assert.NotNull(sessions.Find(id));
    }

    [Fact]
    public void BeyondTheTrackedAddressesNewcomersShareOneWindowAndExpiredOnesMakeRoom()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var throttle = new SignInThrottle(new ConsoleOptions { SignInAttempts = 1, SignInWindow = TimeSpan.FromMinutes(1) }, clock);
        static IPAddress Address(int i) => new([10, (byte)(i >> 16), (byte)(i >> 8), (byte)i]);
        for (var i = 0; i < SignInThrottle.MaxAddresses; i++) Assert.True(throttle.TryAttempt(Address(i), out _));
        // Each tracked address has used its one attempt.
        Assert.False(throttle.TryAttempt(Address(5), out _));
        // Two newcomers past the table share the overflow window: the first gets its attempt, the second does not.
        Assert.True(throttle.TryAttempt(Address(SignInThrottle.MaxAddresses), out _));
        Assert.False(throttle.TryAttempt(Address(SignInThrottle.MaxAddresses + 1), out _));
        // Once the windows have passed, the table makes room again and each address has its own attempt.
        clock.Advance(TimeSpan.FromMinutes(1));
        Assert.True(throttle.TryAttempt(Address(SignInThrottle.MaxAddresses + 1), out _));
        Assert.True(throttle.TryAttempt(Address(SignInThrottle.MaxAddresses + 2), out _));
        // An IPv4 address and its IPv6-mapped form are one client.
        Assert.False(throttle.TryAttempt(Address(SignInThrottle.MaxAddresses + 2).MapToIPv6(), out _));
    }
}
