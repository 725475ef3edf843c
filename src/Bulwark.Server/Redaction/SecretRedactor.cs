using System.Text.RegularExpressions;

namespace Bulwark.Server.Redaction;

/// <summary>
/// Removes secrets from text bound for logs and audit: anything shaped like a Bulwark key (in any
/// case, even truncated; the public id is kept so the key can still be identified), bearer tokens,
/// and the exact values registered with <see cref="AddKnownSecret"/> (HMAC secret, metrics token,
/// connection-string passwords). Text with none of these is returned as is, without allocating.
/// </summary>
public static partial class SecretRedactor
{
    public const string Mask = "***";
    private static volatile string[] _known = [];
    private static readonly Lock Gate = new();

    [GeneratedRegex(@"(?i)\b(bw[ka]_[a-z0-9]{12})[_-]?[a-z0-9_-]*|\b(bw[ka]_)[a-z0-9_-]+")]
    private static partial Regex KeyPattern();

    [GeneratedRegex(@"(?i)\b(bearer|basic)(\s+)[^\s,;""']+")]
    private static partial Regex BearerPattern();

    /// <summary>Registers a secret value to mask wherever it appears. Values shorter than 8 characters are ignored.</summary>
    public static void AddKnownSecret(string? secret)
    {
        if (string.IsNullOrEmpty(secret) || secret.Length < 8) return;
        lock (Gate)
        {
            if (Array.IndexOf(_known, secret) >= 0) return;
            _known = [.. _known, secret];
        }
    }

    public static string Redact(string text)
    {
        if (string.IsNullOrEmpty(text)) return text;
        var result = text;
        foreach (var secret in _known)
            if (result.Contains(secret, StringComparison.Ordinal)) result = result.Replace(secret, Mask, StringComparison.Ordinal);
        if (result.Contains("bw", StringComparison.OrdinalIgnoreCase))
            result = KeyPattern().Replace(result, m => m.Groups[1].Success ? m.Groups[1].Value + "_" + Mask : m.Groups[2].Value + Mask);
        if (result.Contains("earer", StringComparison.OrdinalIgnoreCase) || result.Contains("asic", StringComparison.OrdinalIgnoreCase))
            result = BearerPattern().Replace(result, m => m.Groups[1].Value + m.Groups[2].Value + Mask);
        return result;
    }
}
