using System.Text;

namespace Bulwark.Engine.Tokenizers;

/// <summary>
/// The two UTF-8 conversions tokenization needs beyond <see cref="Encoding.UTF8"/>: reading
/// untrusted bytes the way llama.cpp does (so ids match it on invalid input), and writing
/// pieces back to bytes without losing what was read.
/// </summary>
internal static class Utf8Text
{
    /// <summary>
    /// Decodes like llama.cpp's <c>unicode_cpts_from_utf8</c>: a lead byte with enough
    /// continuation bytes gives its code point (no overlong or surrogate check); any other byte
    /// becomes U+FFFD on its own. Code points above U+10FFFF, which llama.cpp cannot re-encode,
    /// are treated as invalid bytes.
    /// </summary>
    public static string DecodeLenient(ReadOnlySpan<byte> utf8)
    {
        var builder = new StringBuilder(utf8.Length);
        var i = 0;
        while (i < utf8.Length)
        {
            var b = utf8[i];
            int cpt, length;
            if (b < 0x80) { cpt = b; length = 1; }
            else if ((b & 0x40) == 0) { cpt = -1; length = 1; }
            else if ((b & 0x20) == 0) { length = 2; cpt = Continue(utf8, i, length, b & 0x1F); }
            else if ((b & 0x10) == 0) { length = 3; cpt = Continue(utf8, i, length, b & 0x0F); }
            else if ((b & 0x08) == 0) { length = 4; cpt = Continue(utf8, i, length, b & 0x07); }
            else { cpt = -1; length = 1; }

            if (cpt < 0 || cpt > 0x10FFFF)
            {
                builder.Append('\uFFFD');
                i++;
                continue;
            }
            if (cpt < 0x10000) builder.Append((char)cpt);
            else
            {
                cpt -= 0x10000;
                builder.Append((char)(0xD800 + (cpt >> 10))).Append((char)(0xDC00 + (cpt & 0x3FF)));
            }
            i += length;
        }
        return builder.ToString();
    }

    private static int Continue(ReadOnlySpan<byte> utf8, int start, int length, int lead)
    {
        if (start + length > utf8.Length) return -1;
        var cpt = lead;
        for (var k = 1; k < length; k++)
        {
            var c = utf8[start + k];
            if ((c & 0xC0) != 0x80) return -1;
            cpt = (cpt << 6) | (c & 0x3F);
        }
        return cpt;
    }

    /// <summary>Most bytes <see cref="Encode"/> writes for <paramref name="chars"/> chars.</summary>
    public static int MaxBytes(int chars) => chars * 3;

    /// <summary>
    /// UTF-16 to UTF-8 where a lone surrogate (only <see cref="DecodeLenient"/> produces one)
    /// keeps its 3-byte form, as llama.cpp re-encodes it, instead of becoming U+FFFD.
    /// </summary>
    public static int Encode(ReadOnlySpan<char> chars, Span<byte> destination)
    {
        var n = 0;
        for (var i = 0; i < chars.Length; i++)
        {
            int c = chars[i];
            if (c < 0x80) { destination[n++] = (byte)c; continue; }
            if (c < 0x800)
            {
                destination[n++] = (byte)(0xC0 | (c >> 6));
                destination[n++] = (byte)(0x80 | (c & 0x3F));
                continue;
            }
            if (char.IsHighSurrogate((char)c) && i + 1 < chars.Length && char.IsLowSurrogate(chars[i + 1]))
            {
                var cpt = char.ConvertToUtf32((char)c, chars[++i]);
                destination[n++] = (byte)(0xF0 | (cpt >> 18));
                destination[n++] = (byte)(0x80 | ((cpt >> 12) & 0x3F));
                destination[n++] = (byte)(0x80 | ((cpt >> 6) & 0x3F));
                destination[n++] = (byte)(0x80 | (cpt & 0x3F));
                continue;
            }
            destination[n++] = (byte)(0xE0 | (c >> 12));
            destination[n++] = (byte)(0x80 | ((c >> 6) & 0x3F));
            destination[n++] = (byte)(0x80 | (c & 0x3F));
        }
        return n;
    }

    /// <summary>True when the text has a surrogate without its partner (a .NET string can; UTF-8 cannot).</summary>
    public static bool HasLoneSurrogate(ReadOnlySpan<char> text)
    {
        var i = text.IndexOfAnyInRange('\uD800', '\uDFFF');
        if (i < 0) return false;
        for (; i < text.Length; i++)
        {
            var c = text[i];
            if (!char.IsSurrogate(c)) continue;
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { i++; continue; }
            return true;
        }
        return false;
    }

    /// <summary>Replaces lone surrogates by U+FFFD, as <see cref="Encoding.UTF8"/> does when it writes the text.</summary>
    public static string ReplaceLoneSurrogates(ReadOnlySpan<char> text) =>
        Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text.ToArray()));
}
