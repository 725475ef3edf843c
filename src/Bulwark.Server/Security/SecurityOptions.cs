namespace Bulwark.Server.Security;

/// <summary><c>Bulwark:Security</c> in configuration.</summary>
public sealed class SecurityOptions
{
    /// <summary>Base64 HMAC secret (≥ 32 bytes). Empty: <c>state/hmac.secret</c> in the data directory.</summary>
    public string? HmacSecret { get; set; }

    /// <summary>Bearer token that reads <c>/metrics</c> (admin keys can too). Empty: only admin keys.</summary>
    public string? MetricsToken { get; set; }

    /// <summary>Paths answered without credentials. Exact, case-insensitive matches only.</summary>
    public string[] PublicPaths { get; set; } = ["/health", "/ready"];

    /// <summary>How long a looked-up key stays cached; revocations evict at once through the incident log.</summary>
    public TimeSpan KeyCacheLifetime { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often each replica reads the incident log (revokes, blocks, cancels, log level).</summary>
    public TimeSpan IncidentPollInterval { get; set; } = TimeSpan.FromMilliseconds(250);
}
