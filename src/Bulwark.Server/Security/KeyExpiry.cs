using System.Globalization;

namespace Bulwark.Server.Security;

/// <summary>
/// Reads a key's expiry as an operator writes it: a lifetime from now (<c>90m</c>, <c>12h</c>,
/// <c>30d</c>) or an instant (<c>2027-01-01</c>, midnight UTC; or ISO 8601 such as
/// <c>2027-01-01T12:00:00Z</c>).
/// </summary>
public static class KeyExpiry
{
    public const int MaxDays = 3650;

    /// <exception cref="ArgumentException">The text is neither form, or the lifetime is out of range; the message names the value.</exception>
    public static DateTimeOffset Parse(string text, DateTimeOffset now)
    {
        text = text.Trim();
        if (text.Length >= 2 && char.IsAsciiLetter(text[^1]) && long.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var amount))
        {
            TimeSpan? lifetime = char.ToLowerInvariant(text[^1]) switch
            {
                'm' when amount <= MaxDays * 1440L => TimeSpan.FromMinutes(amount),
                'h' when amount <= MaxDays * 24L => TimeSpan.FromHours(amount),
                'd' when amount <= MaxDays => TimeSpan.FromDays(amount),
                _ => null,
            };
            if (lifetime is { } span && span > TimeSpan.Zero) return now + span;
            throw new ArgumentException($"expires lifetime must be 1 to {MaxDays} days written as <n>m, <n>h or <n>d; got '{text}'");
        }
        if (DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
            return new DateTimeOffset(date.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        if (text.Contains('T') && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var instant))
            return instant.ToUniversalTime();
        throw new ArgumentException($"expires must be a lifetime (90m, 12h, 30d) or a date (2027-01-01 or 2027-01-01T12:00:00Z); got '{text}'");
    }
}
