namespace Bulwark.Server.OperatorConsole;

/// <summary>
/// <c>Bulwark:Console</c>: the operator console at <c>/console</c>. On by default while the server listens on
/// loopback only; on any other address it is served only when <see cref="AllowRemote"/> says so, because it
/// takes admin keys through a browser form.
/// </summary>
public sealed class ConsoleOptions
{
    public const string Section = "Bulwark:Console";

    public bool Enabled { get; set; } = true;

    /// <summary>Serve the console when the server listens beyond loopback (<c>--host 0.0.0.0</c>); put TLS in front first.</summary>
    public bool AllowRemote { get; set; }

    /// <summary>A session unused this long ends.</summary>
    public TimeSpan SessionIdleTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>A session ends this long after sign-in, however busy.</summary>
    public TimeSpan SessionLifetime { get; set; } = TimeSpan.FromHours(8);

    /// <summary>Sign-in attempts one client address may make per <see cref="SignInWindow"/>; the next is refused (429).</summary>
    public int SignInAttempts { get; set; } = 10;

    public TimeSpan SignInWindow { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Sessions held at once on this replica; signing in beyond it ends the oldest.</summary>
    public int MaxSessions { get; set; } = 1000;

    /// <summary>Lifetime of a key the playground mints.</summary>
    public TimeSpan PlaygroundKeyLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Whether the console is served on a server listening as <paramref name="loopbackOnly"/> says.</summary>
    public bool ServedWhen(bool loopbackOnly) => Enabled && (loopbackOnly || AllowRemote);

    public IEnumerable<string> Validate()
    {
        if (SessionIdleTimeout < TimeSpan.FromMinutes(1) || SessionIdleTimeout > TimeSpan.FromHours(24))
            yield return $"{Section}:SessionIdleTimeout must be between 00:01:00 and 1.00:00:00; got {SessionIdleTimeout}.";
        if (SessionLifetime < SessionIdleTimeout || SessionLifetime > TimeSpan.FromDays(7))
            yield return $"{Section}:SessionLifetime must be at least SessionIdleTimeout ({SessionIdleTimeout}) and at most 7.00:00:00; got {SessionLifetime}.";
        if (SignInAttempts is < 1 or > 1000) yield return $"{Section}:SignInAttempts must be between 1 and 1000; got {SignInAttempts}.";
        if (SignInWindow < TimeSpan.FromSeconds(1) || SignInWindow > TimeSpan.FromDays(1))
            yield return $"{Section}:SignInWindow must be between 00:00:01 and 1.00:00:00; got {SignInWindow}.";
        if (MaxSessions is < 1 or > 100_000) yield return $"{Section}:MaxSessions must be between 1 and 100000; got {MaxSessions}.";
        if (PlaygroundKeyLifetime < TimeSpan.FromMinutes(1) || PlaygroundKeyLifetime > TimeSpan.FromDays(1))
            yield return $"{Section}:PlaygroundKeyLifetime must be between 00:01:00 and 1.00:00:00; got {PlaygroundKeyLifetime}.";
    }
}
