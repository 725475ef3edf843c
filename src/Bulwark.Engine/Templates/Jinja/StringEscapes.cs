using System.Globalization;
using System.Text;

namespace Bulwark.Engine.Templates.Jinja;

/// <summary>
/// Decodes one backslash escape of a template string literal with Python's "unicode-escape"
/// rules, which is what Jinja2 applies to its string literals.
/// </summary>
internal static class StringEscapes
{
    /// <summary><paramref name="pos"/> points just after the backslash; it is advanced past the escape.</summary>
    public static void Decode(string src, ref int pos, StringBuilder sb, Func<string, TemplateException> error)
    {
        var c = src[pos++];
        switch (c)
        {
            case '\n': break; // line continuation
            case '\\': sb.Append('\\'); break;
            case '\'': sb.Append('\''); break;
            case '"': sb.Append('"'); break;
            case 'a': sb.Append('\a'); break;
            case 'b': sb.Append('\b'); break;
            case 'f': sb.Append('\f'); break;
            case 'n': sb.Append('\n'); break;
            case 'r': sb.Append('\r'); break;
            case 't': sb.Append('\t'); break;
            case 'v': sb.Append('\v'); break;
            case 'x': AppendCodePoint(sb, ReadHex(src, ref pos, 2, error), error); break;
            case 'u': AppendCodePoint(sb, ReadHex(src, ref pos, 4, error), error); break;
            case 'U': AppendCodePoint(sb, ReadHex(src, ref pos, 8, error), error); break;
            case >= '0' and <= '7':
                var value = c - '0';
                for (var n = 1; n < 3 && pos < src.Length && src[pos] is >= '0' and <= '7'; n++)
                    value = (value * 8) + (src[pos++] - '0');
                AppendCodePoint(sb, value, error);
                break;
            default:
                // Python keeps unknown escapes as written.
                sb.Append('\\').Append(c);
                break;
        }
    }

    private static int ReadHex(string src, ref int pos, int digits, Func<string, TemplateException> error)
    {
        if (pos + digits > src.Length
            || !int.TryParse(src.AsSpan(pos, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value)
            || src.AsSpan(pos, digits).ContainsAny('+', '-'))
            throw error($"truncated \\{(digits == 2 ? "x" : digits == 4 ? "u" : "U")} escape in string literal");
        pos += digits;
        return value;
    }

    private static void AppendCodePoint(StringBuilder sb, int value, Func<string, TemplateException> error)
    {
        if (value is < 0 or > 0x10FFFF)
            throw error($"escape \\U{value:x8} is beyond the last Unicode code point U+10FFFF");
        if (value is >= 0xD800 and <= 0xDFFF)
            sb.Append((char)value);
        else
            sb.Append(char.ConvertFromUtf32(value));
    }
}
