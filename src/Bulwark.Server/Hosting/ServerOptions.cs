using System.Net;

namespace Bulwark.Server.Hosting;

/// <summary>
/// Where the server listens and how patient it is with clients (configuration section
/// <c>Bulwark:Server</c>; flags <c>--host</c>/<c>--port</c>; environment <c>Bulwark__Server__Port</c>...).
/// Binds to loopback unless told otherwise: exposing the port is a decision, not a default.
/// </summary>
public sealed class ServerOptions
{
    public const string Section = "Bulwark:Server";

    public string Host { get; set; } = "127.0.0.1";

    /// <summary>0 picks a free port (tests use it); the default follows vLLM's.</summary>
    public int Port { get; set; } = 8000;

    /// <summary>On shutdown, in-flight requests get this long to finish before they are cancelled.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A client must send its whole request head within this time (slow-loris defense).</summary>
    public TimeSpan RequestHeadersTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>A request body slower than this, after <see cref="MinRequestBodyGracePeriod"/>, is cut off.</summary>
    public double MinRequestBodyBytesPerSecond { get; set; } = 240;

    public TimeSpan MinRequestBodyGracePeriod { get; set; } = TimeSpan.FromSeconds(5);

    public TimeSpan KeepAliveTimeout { get; set; } = TimeSpan.FromSeconds(120);

    public long MaxConcurrentConnections { get; set; } = 1024;

    /// <summary>Allow core files when the process crashes (debugging only: they hold prompts, completions and keys). Off by default.</summary>
    public bool CoreDumps { get; set; }

    public int MaxRequestHeadersBytes { get; set; } = 32 * 1024;

    public string Url => UrlFor("http");

    /// <summary>The listen URL with <paramref name="scheme"/> (https when TLS is configured).</summary>
    public string UrlFor(string scheme) => $"{scheme}://{(IPAddress.TryParse(Host, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{Host}]" : Host)}:{Port}";

    public bool IsLoopbackOnly => Host == "localhost" || (IPAddress.TryParse(Host, out var ip) && IPAddress.IsLoopback(ip));

    public IEnumerable<string> Validate()
    {
        if (string.IsNullOrWhiteSpace(Host) || Host.Length > 253 || (Uri.CheckHostName(Host) == UriHostNameType.Unknown && Host != "*"))
            yield return $"Bulwark:Server:Host must be an IP address or host name; got '{Host}'.";
        if (Port is < 0 or > 65535) yield return $"Bulwark:Server:Port must be between 0 and 65535; got {Port}.";
        if (DrainTimeout < TimeSpan.Zero || DrainTimeout > TimeSpan.FromHours(1))
            yield return $"Bulwark:Server:DrainTimeout must be between 00:00:00 and 01:00:00; got {DrainTimeout}.";
        if (RequestHeadersTimeout <= TimeSpan.Zero || RequestHeadersTimeout > TimeSpan.FromMinutes(5))
            yield return $"Bulwark:Server:RequestHeadersTimeout must be more than 0 and at most 00:05:00; got {RequestHeadersTimeout}.";
        if (MinRequestBodyBytesPerSecond is < 1 or > 1e9)
            yield return $"Bulwark:Server:MinRequestBodyBytesPerSecond must be between 1 and 1000000000; got {MinRequestBodyBytesPerSecond}.";
        // Kestrel's MinDataRate refuses a grace period of one second or less (and would fail at start-up).
        if (MinRequestBodyGracePeriod <= TimeSpan.FromSeconds(1) || MinRequestBodyGracePeriod > TimeSpan.FromMinutes(5))
            yield return $"Bulwark:Server:MinRequestBodyGracePeriod must be more than 00:00:01 and at most 00:05:00; got {MinRequestBodyGracePeriod}.";
        if (KeepAliveTimeout <= TimeSpan.Zero || KeepAliveTimeout > TimeSpan.FromHours(1))
            yield return $"Bulwark:Server:KeepAliveTimeout must be more than 0 and at most 01:00:00; got {KeepAliveTimeout}.";
        if (MaxConcurrentConnections is < 1 or > 1_000_000)
            yield return $"Bulwark:Server:MaxConcurrentConnections must be between 1 and 1000000; got {MaxConcurrentConnections}.";
        if (MaxRequestHeadersBytes is < 1024 or > 1024 * 1024)
            yield return $"Bulwark:Server:MaxRequestHeadersBytes must be between 1024 and 1048576; got {MaxRequestHeadersBytes}.";
    }
}
