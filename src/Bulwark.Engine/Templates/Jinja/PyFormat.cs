using System.Globalization;
using System.Text;

namespace Bulwark.Engine.Templates.Jinja;

/// <summary>Python's <c>str()</c> and <c>repr()</c> of template values, byte for byte.</summary>
internal static class PyFormat
{
    private const int MaxDepth = 200;

    public static string Str(object? value) => value switch
    {
        string s => s,
        Undefined u => u.UnsafeMessage is null ? "" : throw u.Fail(),
        _ => Repr(value),
    };

    public static string Repr(object? value)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, value, 0);
        return sb.ToString();
    }

    private static void AppendRepr(StringBuilder sb, object? value, int depth)
    {
        if (depth > MaxDepth)
            throw TemplateException.Limit($"value nesting is deeper than {MaxDepth} levels");
        switch (value)
        {
            case null: sb.Append("None"); break;
            case bool b: sb.Append(b ? "True" : "False"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(Float(d)); break;
            case string s: AppendStringRepr(sb, s); break;
            case Undefined u: sb.Append(u.UnsafeMessage is null ? "Undefined" : throw u.Fail()); break;
            case PyTuple t:
                sb.Append('(');
                AppendItems(sb, t, depth);
                if (t.Count == 1)
                    sb.Append(',');
                sb.Append(')');
                break;
            case PyList list:
                sb.Append('[');
                AppendItems(sb, list, depth);
                sb.Append(']');
                break;
            case PyDict dict:
                sb.Append('{');
                var first = true;
                foreach (var (k, v) in dict)
                {
                    if (!first)
                        sb.Append(", ");
                    first = false;
                    AppendRepr(sb, k, depth + 1);
                    sb.Append(": ");
                    AppendRepr(sb, v, depth + 1);
                }
                sb.Append('}');
                break;
            case Namespace ns:
                sb.Append("<Namespace ");
                AppendRepr(sb, ns.Attributes, depth + 1);
                sb.Append('>');
                break;
            case LoopState: sb.Append("<LoopContext>"); break;
            case ITemplateCallable c: sb.Append("<function ").Append(c.Name).Append('>'); break;
            default: throw new InvalidOperationException("not a template value: " + value.GetType().Name);
        }
    }

    private static void AppendItems(StringBuilder sb, PyList list, int depth)
    {
        for (var i = 0; i < list.Count; i++)
        {
            if (i > 0)
                sb.Append(", ");
            AppendRepr(sb, list[i], depth + 1);
        }
    }

    /// <summary>Python's float repr: shortest round-trip digits, scientific below 1e-4 and from 1e16.</summary>
    public static string Float(double d)
    {
        if (double.IsNaN(d))
            return "nan";
        if (double.IsInfinity(d))
            return d > 0 ? "inf" : "-inf";
        if (d == 0)
            return double.IsNegative(d) ? "-0.0" : "0.0";

        // "E16" is not shortest; "R" is, and its exponent form is easy to take apart.
        var r = Math.Abs(d).ToString("R", CultureInfo.InvariantCulture);
        var exponent = 0;
        var e = r.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exponent = int.Parse(r.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            r = r[..e];
        }
        var dot = r.IndexOf('.');
        var digits = dot < 0 ? r : r.Remove(dot, 1);
        var pointAt = (dot < 0 ? r.Length : dot) + exponent; // value = 0.digits * 10^pointAt
        var leadingZeros = digits.Length - digits.TrimStart('0').Length;
        digits = digits.Trim('0');
        pointAt -= leadingZeros;
        if (digits.Length == 0)
            digits = "0";

        var sb = new StringBuilder();
        if (d < 0)
            sb.Append('-');
        if (pointAt is > -4 and <= 16)
        {
            if (pointAt <= 0)
                sb.Append("0.").Append('0', -pointAt).Append(digits);
            else if (pointAt >= digits.Length)
                sb.Append(digits).Append('0', pointAt - digits.Length).Append(".0");
            else
                sb.Append(digits, 0, pointAt).Append('.').Append(digits, pointAt, digits.Length - pointAt);
            return sb.ToString();
        }
        sb.Append(digits[0]);
        if (digits.Length > 1)
            sb.Append('.').Append(digits, 1, digits.Length - 1);
        var exp = pointAt - 1;
        sb.Append('e').Append(exp < 0 ? '-' : '+').Append(Math.Abs(exp).ToString("00", CultureInfo.InvariantCulture));
        return sb.ToString();
    }

    private static void AppendStringRepr(StringBuilder sb, string s)
    {
        var quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(quote);
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c == quote || c == '\\')
            {
                sb.Append('\\').Append(c);
                continue;
            }
            switch (c)
            {
                case '\n': sb.Append("\\n"); continue;
                case '\r': sb.Append("\\r"); continue;
                case '\t': sb.Append("\\t"); continue;
            }
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                var cp = char.ConvertToUtf32(c, s[i + 1]);
                if (IsPrintable(cp))
                    sb.Append(c).Append(s[i + 1]);
                else
                    sb.Append("\\U").Append(cp.ToString("x8", CultureInfo.InvariantCulture));
                i++;
                continue;
            }
            if (IsPrintable(c))
                sb.Append(c);
            else if (c < 0x100)
                sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
            else
                sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
        }
        sb.Append(quote);
    }

    // Python's str.isprintable: everything except categories Cc, Cf, Cs, Co, Cn, Zl, Zp and Zs other than ' '.
    private static bool IsPrintable(int codePoint)
    {
        if (codePoint == ' ')
            return true;
        var category = CharUnicodeInfo.GetUnicodeCategory(codePoint);
        return category is not (UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
            or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned or UnicodeCategory.LineSeparator
            or UnicodeCategory.ParagraphSeparator or UnicodeCategory.SpaceSeparator);
    }
}
