using System.Globalization;

namespace Bulwark.Server.Security;

/// <summary>
/// How long a rotated key's old secret keeps working, as an operator writes it: <c>0</c> (revoked at
/// once, as a rotation without grace), or <c>&lt;n&gt;s</c>, <c>&lt;n&gt;m</c>, <c>&lt;n&gt;h</c>,
/// <c>&lt;n&gt;d</c> up to <see cref="Max"/>. The cap keeps an overlap an overlap: a secret that must
/// work for longer than a month is not being rotated.
/// </summary>
public static class RotationGrace
{
    public static readonly TimeSpan Max = TimeSpan.FromDays(30);

    /// <exception cref="ArgumentException">Not a duration in that form, or above <see cref="Max"/>; the message names the value.</exception>
    public static TimeSpan Parse(string text)
    {
        var trimmed = text.Trim();
        if (trimmed == "0") return TimeSpan.Zero;
        if (trimmed.Length >= 2 && long.TryParse(trimmed.AsSpan(0, trimmed.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var amount))
        {
            // Compared in the unit before converting, so a huge number cannot overflow TimeSpan.
            var (unit, perMax) = char.ToLowerInvariant(trimmed[^1]) switch
            {
                's' => (TimeSpan.FromSeconds(1), (long)Max.TotalSeconds),
                'm' => (TimeSpan.FromMinutes(1), (long)Max.TotalMinutes),
                'h' => (TimeSpan.FromHours(1), (long)Max.TotalHours),
                'd' => (TimeSpan.FromDays(1), (long)Max.TotalDays),
                _ => (TimeSpan.Zero, 0L),
            };
            if (unit != TimeSpan.Zero)
            {
                if (amount > perMax) throw new ArgumentException($"grace must be at most {Format(Max)} ({(long)Max.TotalHours}h); got '{text}'");
                return unit * amount;
            }
        }
        throw new ArgumentException($"grace must be 0 (revoke the old key at once) or a duration such as 90s, 30m, 24h or 7d; got '{text}'");
    }

    /// <summary>Throws unless <paramref name="grace"/> is between zero and <see cref="Max"/>.</summary>
    /// <exception cref="ArgumentException">Out of range; the message names the value.</exception>
    public static void Check(TimeSpan grace)
    {
        if (grace < TimeSpan.Zero || grace > Max)
            throw new ArgumentException($"grace must be between 0 and {Format(Max)}; got {Format(grace)}");
    }

    /// <summary>
    /// As an operator would write it: whole days from two days on (<c>7d</c>), else whole hours
    /// (<c>24h</c>), minutes (<c>30m</c>) or seconds (<c>90s</c>); <c>0</c> for none.
    /// </summary>
    public static string Format(TimeSpan grace)
    {
        if (grace == TimeSpan.Zero) return "0";
        if (grace.Ticks % TimeSpan.TicksPerDay == 0 && grace >= TimeSpan.FromDays(2)) return $"{grace.Ticks / TimeSpan.TicksPerDay}d";
        if (grace.Ticks % TimeSpan.TicksPerHour == 0) return $"{grace.Ticks / TimeSpan.TicksPerHour}h";
        if (grace.Ticks % TimeSpan.TicksPerMinute == 0) return $"{grace.Ticks / TimeSpan.TicksPerMinute}m";
        return grace.TotalSeconds.ToString(CultureInfo.InvariantCulture) + "s";
    }
}
