using System.Net;

namespace Bulwark.Server.OperatorConsole;

/// <summary>
/// Limits console sign-in attempts per client address: <see cref="ConsoleOptions.SignInAttempts"/> per
/// <see cref="ConsoleOptions.SignInWindow"/> (a fixed window starting at an address's first attempt), counting
/// successes and failures alike, so guessing admin keys through the form is as slow as an operator wants.
/// At most <see cref="MaxAddresses"/> addresses are tracked; beyond that the rest share one window, so a flood
/// of addresses cannot grow memory or wipe another address's count.
/// </summary>
public sealed class SignInThrottle(ConsoleOptions options, TimeProvider time)
{
    public const int MaxAddresses = 10_000;
    private static readonly IPAddress Overflow = IPAddress.IPv6None;
    private readonly Dictionary<IPAddress, (DateTimeOffset Start, int Count)> _windows = [];
    private readonly Lock _lock = new();

    /// <summary>Counts an attempt from <paramref name="address"/>; false when it is over the limit (then the time until the window ends).</summary>
    public bool TryAttempt(IPAddress? address, out TimeSpan retryAfter)
    {
        var key = address is null ? Overflow : address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
        var now = time.GetUtcNow();
        lock (_lock)
        {
            if (!_windows.ContainsKey(key) && _windows.Count >= MaxAddresses)
            {
                foreach (var (k, w) in _windows.ToList()) if (now - w.Start >= options.SignInWindow) _windows.Remove(k);
                if (_windows.Count >= MaxAddresses) key = Overflow;
            }
            var (start, count) = _windows.TryGetValue(key, out var window) && now - window.Start < options.SignInWindow ? window : (now, 0);
            retryAfter = start + options.SignInWindow - now;
            if (count >= options.SignInAttempts)
            {
                _windows[key] = (start, count);
                return false;
            }
            _windows[key] = (start, count + 1);
            return true;
        }
    }
}
