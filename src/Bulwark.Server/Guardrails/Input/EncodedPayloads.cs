using System.Buffers.Text;
using System.Buffers;
using System.Text.RegularExpressions;
using System.Text;
using Bulwark.Engine.Memory;

namespace Bulwark.Server.Guardrails.Input;

/// <summary>
/// Decodes what may be an instruction hidden in an encoding, so the wording rules can be run on
/// it again: base64 (standard and URL-safe) and hex runs that decode to mostly printable UTF-8,
/// and the rot13 reading of the whole text. Decoding is bounded: at most <see cref="MaxCandidates"/>
/// runs per text, each at most <see cref="MaxRunLength"/> characters.
/// </summary>
public static partial class EncodedPayloads
{
    public const int MaxCandidates = 32;
    public const int MaxRunLength = 16_384;
    private const double MinPrintable = 0.9;

    // 16+ base64 characters: shorter runs are words and identifiers, and decode to too little to act on.
    [GeneratedRegex(@"[A-Za-z0-9+/_\-]{16,}={0,2}", RegexOptions.CultureInvariant)]
    private static partial Regex Base64Run();

    // 8+ bytes as hex, optionally spaced or \x / 0x prefixed.
    [GeneratedRegex(@"(?:(?:\\x|0x)?[0-9A-Fa-f]{2}[ :]?){8,}", RegexOptions.CultureInvariant)]
    private static partial Regex HexRun();

    /// <summary>Texts decoded from base64 or hex runs in <paramref name="text"/> (the raw text, not the normalized one).</summary>
    public static List<string> Decoded(string text)
    {
        var found = new List<string>();
        var candidates = 0;
        foreach (var match in Base64Run().EnumerateMatches(text))
        {
            if (++candidates > MaxCandidates) return found;
            if (match.Length > MaxRunLength) continue;
            var decoded = FromBase64(text.AsSpan(match.Index, match.Length));
            if (decoded is not null) found.Add(decoded);
        }
        foreach (var match in HexRun().EnumerateMatches(text))
        {
            if (++candidates > MaxCandidates) return found;
            if (match.Length > MaxRunLength) continue;
            var decoded = FromHex(text.AsSpan(match.Index, match.Length));
            if (decoded is not null) found.Add(decoded);
        }
        return found;
    }

    public static string? FromBase64(ReadOnlySpan<char> run)
    {
        Span<char> chars = run.Length <= 1024 ? stackalloc char[run.Length + 3] : new char[run.Length + 3];
        var n = 0;
        foreach (var c in run)
        {
            if (c == '=') break;
            chars[n++] = c switch { '-' => '+', '_' => '/', _ => c };
        }
        if (n % 4 == 1) n--; // a dangling character cannot be completed into a byte
        while (n % 4 != 0) chars[n++] = '=';
        var bytes = ClearingArrayPool<byte>.Rent(n / 4 * 3);
        try
        {
            return Convert.TryFromBase64Chars(chars[..n], bytes, out var written) ? PrintableUtf8(bytes.AsSpan(0, written)) : null;
        }
        finally
        {
            ClearingArrayPool<byte>.Return(bytes);
        }
    }

    public static string? FromHex(ReadOnlySpan<char> run)
    {
        var digits = new StringBuilder(run.Length);
        for (var i = 0; i < run.Length; i++)
        {
            var c = run[i];
            if ((c == '\\' && i + 1 < run.Length && run[i + 1] == 'x') || (c == '0' && i + 1 < run.Length && run[i + 1] == 'x' && digits.Length % 2 == 0))
            {
                i++;
                continue;
            }
            if (char.IsAsciiHexDigit(c)) digits.Append(c);
        }
        if (digits.Length % 2 == 1) digits.Length--;
        return PrintableUtf8(Convert.FromHexString(digits.ToString()));
    }

    /// <summary>ROT13 of the ASCII letters; everything else unchanged.</summary>
    public static string Rot13(string text) => string.Create(text.Length, text, static (span, source) =>
    {
        for (var i = 0; i < source.Length; i++)
        {
            var c = source[i];
            span[i] = c switch
            {
                >= 'a' and <= 'z' => (char)('a' + (c - 'a' + 13) % 26),
                >= 'A' and <= 'Z' => (char)('A' + (c - 'A' + 13) % 26),
                _ => c,
            };
        }
    });

    /// <summary>The bytes as text when they are valid UTF-8 and at least 90% printable, else null (random binary, images).</summary>
    private static string? PrintableUtf8(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 6 || !System.Text.Unicode.Utf8.IsValid(bytes)) return null;
        var text = Encoding.UTF8.GetString(bytes);
        var printable = 0;
        foreach (var c in text)
        {
            if (!char.IsControl(c) || c is '\n' or '\t' or '\r') printable++;
        }
        if (printable < MinPrintable * text.Length) return null;
        // Random bytes that happen to be valid UTF-8 are rarely letters; demand some words.
        var letters = 0;
        foreach (var c in text) if (char.IsLetter(c) || c == ' ') letters++;
        return letters >= 0.6 * text.Length ? text : null;
    }
}
