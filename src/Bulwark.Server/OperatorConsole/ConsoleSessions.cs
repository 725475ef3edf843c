using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace Bulwark.Server.OperatorConsole;

/// <summary>A signed-in console session: whose admin key, its CSRF token, and when it ends.</summary>
public sealed record ConsoleSession(string Handle, string KeyId, string CsrfToken, DateTimeOffset CreatedAt)
{
    /// <summary>Moved forward by each request; the idle timeout counts from it.</summary>
    public DateTimeOffset LastSeen { get; set; } = CreatedAt;
}

/// <summary>
/// The console's server-side sessions, in this replica's memory. The browser holds only a random id (256 bits
/// from the CSPRNG); the table is keyed by its SHA-256, so a heap dump or a log of the table gives no usable cookie.
/// A session ends on sign-out, after <see cref="ConsoleOptions.SessionIdleTimeout"/> unused, after
/// <see cref="ConsoleOptions.SessionLifetime"/> in all, or when <see cref="ConsoleOptions.MaxSessions"/> newer
/// ones push it out. Time is the injected clock.
/// </summary>
public sealed class ConsoleSessions(ConsoleOptions options, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, ConsoleSession> _sessions = new(StringComparer.Ordinal);

    public int Count => _sessions.Count;

    /// <summary>Starts a session for <paramref name="keyId"/>; returns the id to put in the cookie (never stored here).</summary>
    public (string Id, ConsoleSession Session) Start(string keyId)
    {
        var now = time.GetUtcNow();
        Sweep(now);
        while (_sessions.Count >= options.MaxSessions && _sessions.Values.MinBy(s => s.CreatedAt) is { } oldest) _sessions.TryRemove(oldest.Handle, out _);
        var id = Random();
        var session = new ConsoleSession(Handle(id), keyId, Random(), now);
        _sessions[session.Handle] = session;
        return (id, session);
    }

    /// <summary>The live session the cookie value names, its idle clock restarted; null (and the session dropped) when it has ended.</summary>
    public ConsoleSession? Find(string? id)
    {
        if (string.IsNullOrEmpty(id) || id.Length > 100) return null;
        var handle = Handle(id);
        if (!_sessions.TryGetValue(handle, out var session)) return null;
        var now = time.GetUtcNow();
        if (Ended(session, now))
        {
            _sessions.TryRemove(handle, out _);
            return null;
        }
        session.LastSeen = now;
        return session;
    }

    /// <summary>Ends a session (sign-out, or its key no longer valid).</summary>
    public bool End(ConsoleSession session) => _sessions.TryRemove(session.Handle, out _);

    private bool Ended(ConsoleSession s, DateTimeOffset now) =>
        now - s.LastSeen >= options.SessionIdleTimeout || now - s.CreatedAt >= options.SessionLifetime;

    private void Sweep(DateTimeOffset now)
    {
        foreach (var s in _sessions.Values) if (Ended(s, now)) _sessions.TryRemove(s.Handle, out _);
    }

    private static string Random() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static string Handle(string id) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(id)));
}
