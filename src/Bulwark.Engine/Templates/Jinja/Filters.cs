using System.Globalization;

namespace Bulwark.Engine.Templates.Jinja;

/// <summary>
/// The filters a template may apply (<c>value | name(args)</c>), with Jinja2's semantics;
/// <c>tojson</c> is Hugging Face's override (Python <c>json.dumps</c>, no HTML escaping).
/// </summary>
internal static class Filters
{
    private delegate object? Filter(Renderer r, object? value, CallArguments args);

    private static readonly Dictionary<string, Filter> All = new(StringComparer.Ordinal)
    {
        ["tojson"] = ToJson,
        ["trim"] = (_, v, a) => { a.Check("trim", "chars"); return Methods.Strip(Text(v), a.Get(0, "chars", null) as string, true, true); },
        ["length"] = Length,
        ["count"] = Length,
        ["items"] = Items,
        ["join"] = Join,
        ["list"] = (r, v, a) => { a.Check("list"); return ToList(r, PyOps.Iterate(v)); },
        ["lower"] = (_, v, a) => { a.Check("lower"); return Text(v).ToLowerInvariant(); },
        ["upper"] = (_, v, a) => { a.Check("upper"); return Text(v).ToUpperInvariant(); },
        ["capitalize"] = (r, v, a) => { a.Check("capitalize"); return Methods.Invoke(r, Text(v), "capitalize", CallArguments.None); },
        ["title"] = (r, v, a) => { a.Check("title"); return Methods.Invoke(r, Text(v), "title", CallArguments.None); },
        ["string"] = (_, v, a) => { a.Check("string"); return Text(v); },
        ["safe"] = (_, v, a) => { a.Check("safe"); return Text(v); },
        ["replace"] = Replace,
        ["indent"] = Indent,
        ["default"] = Default,
        ["d"] = Default,
        ["first"] = (_, v, a) => { a.Check("first"); var items = PyOps.Iterate(v); return items.Count > 0 ? items[0] : Undefined.WithHint("No first item, sequence was empty."); },
        ["last"] = (_, v, a) => { a.Check("last"); var items = PyOps.Iterate(v); return items.Count > 0 ? items[^1] : Undefined.WithHint("No last item, sequence was empty."); },
        ["reverse"] = (r, v, a) => { a.Check("reverse"); return v is string s ? string.Concat(PyStr.CodePoints(s).AsEnumerable().Reverse()) : ToList(r, PyOps.Iterate(v).Reverse()); },
        ["int"] = ToInt,
        ["float"] = ToFloat,
        ["abs"] = (_, v, a) => { a.Check("abs"); return v is double d ? (object)Math.Abs(d) : v is long or bool ? Math.Abs(PyOps.ToLong(v)) : throw TemplateException.Type($"bad operand type for abs(): '{PyOps.TypeName(v)}'"); },
        ["round"] = Round,
        ["map"] = Map,
        ["select"] = (r, v, a) => Select(r, v, a, keep: true, byAttribute: false),
        ["reject"] = (r, v, a) => Select(r, v, a, keep: false, byAttribute: false),
        ["selectattr"] = (r, v, a) => Select(r, v, a, keep: true, byAttribute: true),
        ["rejectattr"] = (r, v, a) => Select(r, v, a, keep: false, byAttribute: true),
        ["unique"] = Unique,
        ["sort"] = Sort,
        ["dictsort"] = DictSort,
        ["min"] = (r, v, a) => Extreme(v, a, "min", sign: -1),
        ["max"] = (r, v, a) => Extreme(v, a, "max", sign: 1),
        ["sum"] = Sum,
    };

    public static bool Exists(string name) => All.ContainsKey(name);

    public static object? Apply(Renderer r, string name, object? value, CallArguments args)
    {
        if (!All.TryGetValue(name, out var filter))
            throw new TemplateException(TemplateErrorKind.Syntax, $"No filter named '{name}'.");
        return filter(r, value, args);
    }

    private static string Text(object? value) => PyFormat.Str(value);

    private static PyList ToList(Renderer r, IEnumerable<object?> items)
    {
        var list = new PyList(items);
        r.CheckCollectionLength(list.Count);
        return list;
    }

    // Hugging Face's signature: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
    private static object? ToJson(Renderer r, object? value, CallArguments a)
    {
        a.Check("tojson", "ensure_ascii", "indent", "separators", "sort_keys");
        var indent = a.Get(1, "indent", null) switch
        {
            null => null,
            long n => new string(' ', (int)Math.Clamp(n, 0, 64)),
            string s => s,
            var other => throw TemplateException.Type($"tojson indent must be an integer or a string, not {PyOps.TypeName(other)}"),
        };
        (string, string)? separators = null;
        if (a.Get(2, "separators", null) is PyList { Count: 2 } sep && sep[0] is string item && sep[1] is string key)
            separators = (item, key);
        else if (a.Get(2, "separators", null) is not null)
            throw TemplateException.Type("tojson separators must be a pair of strings");
        return PyJson.Dumps(r, value, PyOps.IsTrue(a.Get(0, "ensure_ascii", false)), indent, separators, PyOps.IsTrue(a.Get(3, "sort_keys", false)));
    }

    private static object? Length(Renderer r, object? value, CallArguments a)
    {
        a.Check("length");
        return PyOps.Length(value);
    }

    private static object? Items(Renderer r, object? value, CallArguments a)
    {
        a.Check("items");
        return value switch
        {
            Undefined u => u.UnsafeMessage is null ? new PyList() : throw u.Fail(),
            PyDict d => new PyList(d.Select(kv => (object?)new PyTuple([kv.Key, kv.Value]))),
            _ => throw TemplateException.Type("Can only get item pairs from a mapping."),
        };
    }

    private static object? Join(Renderer r, object? value, CallArguments a)
    {
        a.Check("join", "d", "attribute");
        var separator = Text(a.Get(0, "d", ""));
        var items = PyOps.Iterate(value);
        var attribute = a.Get(1, "attribute", null);
        var parts = items.Select(item => Text(attribute is null ? item : AttributePath.Get(item, attribute))).ToList();
        r.CheckStringLength(parts.Sum(p => (long)p.Length) + ((long)separator.Length * Math.Max(parts.Count - 1, 0)));
        return string.Join(separator, parts);
    }

    private static object? Replace(Renderer r, object? value, CallArguments a)
    {
        a.Check("replace", "old", "new", "count");
        var count = a.Get(2, "count", null);
        return Methods.Replace(r, Text(value), Text(a.Required(0, "old", "replace")), Text(a.Required(1, "new", "replace")), count is null ? -1 : PyOps.ToLong(count));
    }

    // Jinja appends "\n" before splitting, so a trailing newline does not produce an indented empty line.
    private static object? Indent(Renderer r, object? value, CallArguments a)
    {
        a.Check("indent", "width", "first", "blank");
        var width = a.Get(0, "width", 4L);
        string indentation;
        if (width is string w)
        {
            indentation = w;
        }
        else
        {
            // Jinja would build the whole indentation; a width past the output limit can only fail.
            var spaces = Math.Max(0, PyOps.ToLong(width));
            r.CheckStringLength(spaces);
            indentation = new string(' ', (int)spaces);
        }
        var lines = StringSplitting.SplitLines(Text(value) + "\n", keepEnds: false).Cast<string>().ToList();
        string result;
        if (PyOps.IsTrue(a.Get(2, "blank", false)))
            result = string.Join("\n" + indentation, lines);
        else
            result = lines[0] + string.Concat(lines.Skip(1).Select(line => "\n" + (line.Length > 0 ? indentation + line : line)));
        if (PyOps.IsTrue(a.Get(1, "first", false)))
            result = indentation + result;
        r.CheckStringLength(result.Length);
        return result;
    }

    private static object? Default(Renderer r, object? value, CallArguments a)
    {
        a.Check("default", "default_value", "boolean");
        var useDefault = value is Undefined || (PyOps.IsTrue(a.Get(1, "boolean", false)) && !PyOps.IsTrue(value));
        return useDefault ? a.Get(0, "default_value", "") : value;
    }

    private static object? ToInt(Renderer r, object? value, CallArguments a)
    {
        a.Check("int", "default", "base");
        var fallback = a.Get(0, "default", 0L);
        switch (value)
        {
            case long or bool: return PyOps.ToLong(value);
            case double d: return double.IsFinite(d) && Math.Abs(d) < 9.2e18 ? (long)Math.Truncate(d) : fallback;
            case string s:
                var text = s.Trim().Replace("_", "");
                if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l))
                    return l;
                return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && double.IsFinite(f) && Math.Abs(f) < 9.2e18
                    ? (long)Math.Truncate(f) : fallback;
            default: return fallback;
        }
    }

    private static object? ToFloat(Renderer r, object? value, CallArguments a)
    {
        a.Check("float", "default");
        return value switch
        {
            long or bool or double => PyOps.ToDouble(value),
            string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var f) => f,
            _ => a.Get(0, "default", 0.0),
        };
    }

    private static object? Round(Renderer r, object? value, CallArguments a)
    {
        a.Check("round", "precision", "method");
        var precision = (int)Math.Clamp(PyOps.ToLong(a.Get(0, "precision", 0L)), 0, 15);
        var x = PyOps.ToDouble(value);
        return Text(a.Get(1, "method", "common")) switch
        {
            "common" => Math.Round(x, precision, MidpointRounding.ToEven), // Python's round(): half to even
            "ceil" => Math.Ceiling(x * Math.Pow(10, precision)) / Math.Pow(10, precision),
            "floor" => Math.Floor(x * Math.Pow(10, precision)) / Math.Pow(10, precision),
            var m => throw TemplateException.Type($"method must be common, ceil or floor; got {m}"),
        };
    }

    // map(attribute='x', default=...) or map('filter', args...).
    private static object? Map(Renderer r, object? value, CallArguments a)
    {
        var items = PyOps.Iterate(value);
        if (a.Positional.Count == 0)
        {
            a.Check("map", "attribute", "default");
            var attribute = a.Get(99, "attribute", null) ?? throw TemplateException.Type("map() needs a filter name or attribute=");
            var hasDefault = a.Has(99, "default");
            var fallback = a.Get(99, "default", null);
            return ToList(r, items.Select(item =>
            {
                var v = AttributePath.Get(item, attribute);
                return hasDefault && v is Undefined ? fallback : v;
            }));
        }
        var name = a.Positional[0] as string ?? throw TemplateException.Type("map() filter name must be a string");
        var rest = new CallArguments(a.Positional.Skip(1).ToList(), a.Named);
        return ToList(r, items.Select(item => { r.CountOperation(); return Apply(r, name, item, rest); }));
    }

    private static object? Select(Renderer r, object? value, CallArguments a, bool keep, bool byAttribute)
    {
        var items = PyOps.Iterate(value);
        var offset = byAttribute ? 1 : 0;
        var attribute = byAttribute ? a.Required(0, "attribute", "selectattr") : null;
        var testName = a.Positional.Count > offset ? a.Positional[offset] as string ?? throw TemplateException.Type("test name must be a string") : null;
        var rest = new CallArguments(a.Positional.Skip(offset + 1).ToList(), a.Named);
        return ToList(r, items.Where(item =>
        {
            r.CountOperation();
            var probe = byAttribute ? AttributePath.Get(item, attribute) : item;
            var passed = testName is null ? PyOps.IsTrue(probe) : TestFunctions.Apply(r, testName, probe, rest);
            return passed == keep;
        }));
    }

    private static object? Unique(Renderer r, object? value, CallArguments a)
    {
        a.Check("unique", "case_sensitive", "attribute");
        var caseSensitive = PyOps.IsTrue(a.Get(0, "case_sensitive", false));
        var attribute = a.Get(1, "attribute", null);
        var seen = new PyList();
        var result = new PyList();
        foreach (var item in PyOps.Iterate(value))
        {
            var key = SortKey(attribute is null ? item : AttributePath.Get(item, attribute), caseSensitive);
            if (seen.Exists(k => PyOps.Equal(k, key)))
                continue;
            seen.Add(key);
            result.Add(item);
        }
        return result;
    }

    private static object? Sort(Renderer r, object? value, CallArguments a)
    {
        a.Check("sort", "reverse", "case_sensitive", "attribute");
        var caseSensitive = PyOps.IsTrue(a.Get(1, "case_sensitive", false));
        var attribute = a.Get(2, "attribute", null);
        var list = ToList(r, PyOps.Iterate(value));
        var keyed = list.Select(item => (Key: SortKey(attribute is null ? item : AttributePath.Get(item, attribute), caseSensitive), Item: item)).ToList();
        var sorted = PyOps.IsTrue(a.Get(0, "reverse", false))
            ? keyed.OrderByDescending(x => x.Key, PyOrder.Instance)
            : keyed.OrderBy(x => x.Key, PyOrder.Instance);
        return new PyList(sorted.Select(x => x.Item));
    }

    private static object? DictSort(Renderer r, object? value, CallArguments a)
    {
        a.Check("dictsort", "case_sensitive", "by", "reverse");
        if (value is not PyDict dict)
            throw TemplateException.Type("dictsort only works on a mapping");
        var caseSensitive = PyOps.IsTrue(a.Get(0, "case_sensitive", false));
        var byValue = Text(a.Get(1, "by", "key")) == "value";
        var pairs = dict.Select(kv => (Key: SortKey(byValue ? kv.Value : kv.Key, caseSensitive), Pair: (object?)new PyTuple([kv.Key, kv.Value])));
        var sorted = PyOps.IsTrue(a.Get(2, "reverse", false)) ? pairs.OrderByDescending(x => x.Key, PyOrder.Instance) : pairs.OrderBy(x => x.Key, PyOrder.Instance);
        return new PyList(sorted.Select(x => x.Pair));
    }

    private static object? Extreme(object? value, CallArguments a, string name, int sign)
    {
        a.Check(name, "case_sensitive", "attribute");
        var caseSensitive = PyOps.IsTrue(a.Get(0, "case_sensitive", false));
        var attribute = a.Get(1, "attribute", null);
        object? best = null;
        object? bestKey = null;
        var any = false;
        foreach (var item in PyOps.Iterate(value))
        {
            var key = SortKey(attribute is null ? item : AttributePath.Get(item, attribute), caseSensitive);
            if (!any || PyOps.Compare(key, bestKey, "<") * sign > 0)
                (best, bestKey, any) = (item, key, true);
        }
        return any ? best : Undefined.WithHint($"No {name} item, sequence was empty.");
    }

    private static object? Sum(Renderer r, object? value, CallArguments a)
    {
        a.Check("sum", "attribute", "start");
        var attribute = a.Get(0, "attribute", null);
        var total = a.Get(1, "start", 0L);
        foreach (var item in PyOps.Iterate(value))
            total = PyArithmetic.Binary(r, "+", total, attribute is null ? item : AttributePath.Get(item, attribute));
        return total;
    }

    private static object? SortKey(object? value, bool caseSensitive) => !caseSensitive && value is string s ? s.ToLowerInvariant() : value;
}

/// <summary>Python ordering as an <see cref="IComparer{T}"/> for the sorting filters.</summary>
internal sealed class PyOrder : IComparer<object?>
{
    public static PyOrder Instance { get; } = new();

    public int Compare(object? x, object? y) => PyOps.Equal(x, y) ? 0 : PyOps.Compare(x, y, "<");
}

/// <summary>Jinja's attribute paths for filters: <c>"a.b.0"</c> walks items and attributes.</summary>
internal static class AttributePath
{
    public static object? Get(object? item, object? path)
    {
        if (path is not string s)
            return MemberAccess.GetItem(item, path);
        foreach (var part in s.Split('.'))
        {
            object key = long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var index) ? index : part;
            item = MemberAccess.GetItem(item, key);
        }
        return item;
    }
}
