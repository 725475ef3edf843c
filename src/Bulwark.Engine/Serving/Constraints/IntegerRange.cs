using System.Globalization;

namespace Bulwark.Engine.Serving.Constraints;

/// <summary>A regular expression matching exactly the canonical decimal integers from lo to hi (no leading zeros, "-" for negatives).</summary>
internal static class IntegerRange
{
    public static string Pattern(long lo, long hi)
    {
        var options = new List<string>();
        if (lo < 0)
        {
            // Negative part: "-" followed by magnitudes from max(1, -hi) to -lo.
            var magnitudeLo = hi < 0 ? -hi : 1;
            options.Add("-(" + NonNegative(magnitudeLo, -lo) + ")");
        }
        if (hi >= 0) options.Add(NonNegative(Math.Max(0, lo), hi));
        return string.Join("|", options.Select(o => "(" + o + ")"));
    }

    private static string NonNegative(long lo, long hi)
    {
        var parts = new List<string>();
        for (var digits = Digits(lo); digits <= Digits(hi); digits++)
        {
            var a = Math.Max(lo, digits == 1 ? 0 : Pow10(digits - 1));
            var b = Math.Min(hi, Pow10(digits) - 1);
            if (a <= b) parts.Add(SameLength(a.ToString(CultureInfo.InvariantCulture), b.ToString(CultureInfo.InvariantCulture)));
        }
        return string.Join("|", parts);
    }

    private static string SameLength(string a, string b)
    {
        if (a.Length == 0) return "";
        if (a[0] == b[0]) return a[0] + Group(SameLength(a[1..], b[1..]));
        var rest = a.Length - 1;
        if (a[1..].All(c => c == '0') && b[1..].All(c => c == '9'))
            return $"[{a[0]}-{b[0]}]" + Any(rest);
        var options = new List<string> { a[0] + Group(SameLength(a[1..], new string('9', rest))) };
        if (a[0] + 1 <= b[0] - 1) options.Add($"[{(char)(a[0] + 1)}-{(char)(b[0] - 1)}]" + Any(rest));
        options.Add(b[0] + Group(SameLength(new string('0', rest), b[1..])));
        return string.Join("|", options.Select(o => "(" + o + ")"));
    }

    private static string Group(string s) => s.Length == 0 ? "" : "(" + s + ")";

    private static string Any(int n) => n == 0 ? "" : $"[0-9]{{{n}}}";

    private static int Digits(long v) => v.ToString(CultureInfo.InvariantCulture).Length;

    private static long Pow10(int n)
    {
        long r = 1;
        for (var i = 0; i < n; i++) r *= 10;
        return r;
    }
}
