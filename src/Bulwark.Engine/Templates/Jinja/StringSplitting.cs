
namespace Bulwark.Engine.Templates.Jinja;

/// <summary>Python's <c>str.split</c>, <c>str.rsplit</c> and <c>str.splitlines</c>.</summary>
internal static class StringSplitting
{
    public static List<object?> Split(string s, string? sep, long maxSplit, bool fromRight)
    {
        if (sep is not null && sep.Length == 0)
            throw TemplateException.Type("empty separator");
        if (maxSplit < 0)
            maxSplit = long.MaxValue;
        var parts = sep is null ? SplitWhitespace(s, maxSplit, fromRight) : SplitOn(s, sep, maxSplit, fromRight);
        return parts.Cast<object?>().ToList();
    }

    private static List<string> SplitOn(string s, string sep, long maxSplit, bool fromRight)
    {
        var parts = new List<string>();
        if (!fromRight)
        {
            var pos = 0;
            for (long n = 0; n < maxSplit; n++)
            {
                var at = s.IndexOf(sep, pos, StringComparison.Ordinal);
                if (at < 0)
                    break;
                parts.Add(s[pos..at]);
                pos = at + sep.Length;
            }
            parts.Add(s[pos..]);
            return parts;
        }
        var end = s.Length;
        for (long n = 0; n < maxSplit && end >= sep.Length; n++)
        {
            var at = s.LastIndexOf(sep, end - 1, end, StringComparison.Ordinal);
            if (at < 0)
                break;
            parts.Add(s[(at + sep.Length)..end]);
            end = at;
        }
        parts.Add(s[..end]);
        parts.Reverse();
        return parts;
    }

    // Without a separator Python splits on runs of whitespace and never yields empty strings.
    private static List<string> SplitWhitespace(string s, long maxSplit, bool fromRight)
    {
        var parts = new List<string>();
        if (!fromRight)
        {
            var i = 0;
            while (true)
            {
                while (i < s.Length && TemplateLexer.IsPythonSpace(s[i]))
                    i++;
                if (i >= s.Length)
                    break;
                if (parts.Count >= maxSplit)
                {
                    parts.Add(Methods.Strip(s[i..], null, left: false, right: true));
                    break;
                }
                var start = i;
                while (i < s.Length && !TemplateLexer.IsPythonSpace(s[i]))
                    i++;
                parts.Add(s[start..i]);
            }
            return parts;
        }
        var j = s.Length;
        while (true)
        {
            while (j > 0 && TemplateLexer.IsPythonSpace(s[j - 1]))
                j--;
            if (j <= 0)
                break;
            if (parts.Count >= maxSplit)
            {
                parts.Add(Methods.Strip(s[..j], null, left: true, right: false));
                break;
            }
            var end = j;
            while (j > 0 && !TemplateLexer.IsPythonSpace(s[j - 1]))
                j--;
            parts.Add(s[j..end]);
        }
        parts.Reverse();
        return parts;
    }

    public static List<object?> SplitLines(string s, bool keepEnds)
    {
        var lines = new List<object?>();
        var start = 0;
        for (var i = 0; i < s.Length; i++)
        {
            if (!IsLineBreak(s[i]))
                continue;
            var breakEnd = s[i] == '\r' && i + 1 < s.Length && s[i + 1] == '\n' ? i + 2 : i + 1;
            lines.Add(s[start..(keepEnds ? breakEnd : i)]);
            start = breakEnd;
            i = breakEnd - 1;
        }
        if (start < s.Length)
            lines.Add(s[start..]);
        return lines;
    }

    private static bool IsLineBreak(char c) =>
        c is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029';
}
