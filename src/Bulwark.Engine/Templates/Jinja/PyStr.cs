using System.Text;

namespace Bulwark.Engine.Templates.Jinja;

/// <summary>
/// Python strings count code points; .NET strings count UTF-16 units. These helpers index,
/// measure and slice by code point, with a fast path for the common case of no surrogates.
/// </summary>
internal static class PyStr
{
    public static bool HasSurrogates(string s) => s.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') >= 0;

    public static int Length(string s) => HasSurrogates(s) ? CodePoints(s).Count : s.Length;

    public static List<string> CodePoints(string s)
    {
        var list = new List<string>(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                list.Add(s.Substring(i, 2));
                i++;
            }
            else
            {
                list.Add(s[i].ToString());
            }
        }
        return list;
    }

    public static object? Index(string s, long index)
    {
        if (!HasSurrogates(s))
        {
            var i = index < 0 ? index + s.Length : index;
            return i >= 0 && i < s.Length ? s[(int)i].ToString() : null;
        }
        var points = CodePoints(s);
        var j = index < 0 ? index + points.Count : index;
        return j >= 0 && j < points.Count ? points[(int)j] : null;
    }

    public static string Slice(string s, long? start, long? stop, long step)
    {
        if (!HasSurrogates(s) && step == 1)
        {
            var (from, to) = PySlice.Bounds(s.Length, start, stop);
            return to > from ? s[from..to] : "";
        }
        var points = CodePoints(s);
        var sb = new StringBuilder();
        foreach (var i in PySlice.Indices(points.Count, start, stop, step))
            sb.Append(points[i]);
        return sb.ToString();
    }
}

/// <summary>Python's slice arithmetic (<c>seq[start:stop:step]</c>) with clamping and negative indices.</summary>
internal static class PySlice
{
    public static (int From, int To) Bounds(int length, long? start, long? stop)
    {
        var from = Clamp(start ?? 0, length, 0, length);
        var to = Clamp(stop ?? length, length, 0, length);
        return (from, to);
    }

    public static IEnumerable<int> Indices(int length, long? start, long? stop, long step)
    {
        if (step == 0)
            throw new TemplateException(TemplateErrorKind.Type, "slice step cannot be zero");
        if (step > 0)
        {
            var (from, to) = Bounds(length, start, stop);
            for (long i = from; i < to; i += step)
                yield return (int)i;
        }
        else
        {
            var from = start is null ? length - 1 : Clamp(start.Value, length, -1, length - 1);
            var to = stop is null ? -1 : Clamp(stop.Value, length, -1, length - 1);
            for (long i = from; i > to; i += step)
                yield return (int)i;
        }
    }

    private static int Clamp(long index, int length, int low, int high)
    {
        if (index < 0)
            index += length;
        return (int)Math.Clamp(index, low, high);
    }
}
