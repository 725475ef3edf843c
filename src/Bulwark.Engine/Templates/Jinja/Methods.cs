using System.Text;

namespace Bulwark.Engine.Templates.Jinja;

/// <summary>
/// The whitelist: the only methods a template can call on a value, each implemented here with
/// Python's behaviour. Methods that would mutate a value are refused as Jinja's
/// ImmutableSandboxedEnvironment refuses them; anything else simply does not exist.
/// </summary>
internal static class Methods
{
    private static readonly HashSet<string> StringMethods =
    [
        "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith",
        "upper", "lower", "title", "capitalize", "replace", "find", "rfind", "index", "count", "join",
        "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper",
    ];

    private static readonly HashSet<string> DictMethods = ["get", "items", "keys", "values"];
    private static readonly HashSet<string> ListMethods = ["index", "count"];
    private static readonly HashSet<string> Mutators =
        ["append", "extend", "insert", "pop", "popitem", "remove", "clear", "sort", "reverse", "update", "setdefault", "format", "format_map"];

    public static object? Lookup(object? target, string name)
    {
        var known = target switch
        {
            string => StringMethods.Contains(name),
            PyDict => DictMethods.Contains(name),
            PyList => ListMethods.Contains(name),
            _ => false,
        };
        if (known)
            return new BoundMethod(target!, name);
        if (target is string or PyDict or PyList && Mutators.Contains(name))
            return Undefined.Unsafe(target, name);
        return null;
    }

    public static object? Invoke(Renderer r, object receiver, string name, CallArguments args) => receiver switch
    {
        string s => StringMethod(r, s, name, args),
        PyDict d => DictMethod(d, name, args),
        PyList l => ListMethod(l, name, args),
        _ => throw new InvalidOperationException("no methods on " + PyOps.TypeName(receiver)),
    };

    private static object? DictMethod(PyDict d, string name, CallArguments args)
    {
        switch (name)
        {
            case "get":
                args.Check("get", "key", "default");
                var key = args.Required(0, "key", "get");
                return key is not null and not PyList and not PyDict && d.TryGetValue(key, out var value) ? value : args.Get(1, "default", null);
            case "items":
                args.Check("items");
                return new PyList(d.Select(kv => (object?)new PyTuple([kv.Key, kv.Value])));
            case "keys":
                args.Check("keys");
                return new PyList(d.Keys);
            default:
                args.Check("values");
                return new PyList(d.Values);
        }
    }

    private static object? ListMethod(PyList list, string name, CallArguments args)
    {
        args.Check(name, "value");
        var item = args.Required(0, "value", name);
        if (name == "count")
            return (long)list.Count(x => PyOps.Equal(x, item));
        var at = list.FindIndex(x => PyOps.Equal(x, item));
        return at >= 0 ? (long)at : throw TemplateException.Type($"{PyFormat.Repr(item)} is not in list");
    }

    private static object? StringMethod(Renderer r, string s, string name, CallArguments args)
    {
        switch (name)
        {
            case "strip" or "lstrip" or "rstrip":
                args.Check(name, "chars");
                return Strip(s, OptionalString(args.Get(0, "chars", null), name), name != "rstrip", name != "lstrip");
            case "split" or "rsplit":
                args.Check(name, "sep", "maxsplit");
                var sep = OptionalString(args.Get(0, "sep", null), name);
                var max = PyOps.ToLong(args.Get(1, "maxsplit", -1L));
                return new PyList(StringSplitting.Split(s, sep, max, fromRight: name == "rsplit"));
            case "splitlines":
                args.Check(name, "keepends");
                return new PyList(StringSplitting.SplitLines(s, PyOps.IsTrue(args.Get(0, "keepends", false))));
            case "startswith" or "endswith":
                args.Check(name, "prefix");
                var probe = args.Required(0, "prefix", name);
                var candidates = probe is PyTuple t ? t.ToList() : [probe];
                return candidates.Any(c => c is string p
                    ? (name == "startswith" ? s.StartsWith(p, StringComparison.Ordinal) : s.EndsWith(p, StringComparison.Ordinal))
                    : throw TemplateException.Type($"{name} first arg must be str or a tuple of str, not {PyOps.TypeName(c)}"));
            case "upper": args.Check(name); return s.ToUpperInvariant();
            case "lower": args.Check(name); return s.ToLowerInvariant();
            case "title": args.Check(name); return Title(s);
            case "capitalize": args.Check(name); return s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();
            case "replace":
                args.Check(name, "old", "new", "count");
                return Replace(r, s, RequiredString(args, 0, "old", name), RequiredString(args, 1, "new", name), PyOps.ToLong(args.Get(2, "count", -1L)));
            case "find" or "rfind" or "index":
                args.Check(name, "sub");
                var sub = RequiredString(args, 0, "sub", name);
                var at = name == "rfind" ? s.LastIndexOf(sub, StringComparison.Ordinal) : s.IndexOf(sub, StringComparison.Ordinal);
                if (at < 0 && name == "index")
                    throw TemplateException.Type("substring not found");
                return at < 0 ? -1L : (long)PyStr.Length(s[..at]);
            case "count":
                args.Check(name, "sub");
                return (long)CountOccurrences(s, RequiredString(args, 0, "sub", name));
            case "join":
                args.Check(name, "iterable");
                var parts = PyOps.Iterate(args.Required(0, "iterable", name)).Select((p, i) => p as string
                    ?? throw TemplateException.Type($"sequence item {i}: expected str instance, {PyOps.TypeName(p)} found")).ToList();
                r.CheckStringLength(parts.Sum(p => (long)p.Length) + ((long)s.Length * Math.Max(parts.Count - 1, 0)));
                return string.Join(s, parts);
            default:
                args.Check(name);
                return CharacterClass(s, name);
        }
    }

    public static string Strip(string s, string? chars, bool left, bool right)
    {
        Func<char, bool> strip = chars is null ? TemplateLexer.IsPythonSpace : chars.Contains;
        var (start, end) = (0, s.Length);
        while (left && start < end && strip(s[start]))
            start++;
        while (right && end > start && strip(s[end - 1]))
            end--;
        return s[start..end];
    }

    public static string Replace(Renderer r, string s, string old, string replacement, long count)
    {
        if (count < 0)
            count = long.MaxValue;
        var sb = new StringBuilder();
        if (old.Length == 0)
        {
            // Python inserts the replacement before every character and at the end.
            var points = PyStr.CodePoints(s);
            long done = 0;
            foreach (var p in points)
            {
                if (done++ < count)
                    sb.Append(replacement);
                sb.Append(p);
                r.CheckStringLength(sb.Length);
            }
            if (done < count)
                sb.Append(replacement);
            return sb.ToString();
        }
        var pos = 0;
        for (long n = 0; n < count; n++)
        {
            var at = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (at < 0)
                break;
            sb.Append(s, pos, at - pos).Append(replacement);
            r.CheckStringLength(sb.Length);
            pos = at + old.Length;
        }
        sb.Append(s, pos, s.Length - pos);
        r.CheckStringLength(sb.Length);
        return sb.ToString();
    }

    private static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        var previousCased = false;
        foreach (var c in s)
        {
            var cased = char.IsUpper(c) || char.IsLower(c);
            sb.Append(cased ? (previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c)) : c);
            previousCased = cased;
        }
        return sb.ToString();
    }

    private static bool CharacterClass(string s, string name)
    {
        if (s.Length == 0)
            return false;
        return name switch
        {
            "isdigit" => s.All(char.IsDigit),
            "isalpha" => s.All(char.IsLetter),
            "isalnum" => s.All(char.IsLetterOrDigit),
            "isspace" => s.All(TemplateLexer.IsPythonSpace),
            "islower" => s.Any(char.IsLower) && !s.Any(char.IsUpper),
            _ => s.Any(char.IsUpper) && !s.Any(char.IsLower),
        };
    }

    private static int CountOccurrences(string s, string sub)
    {
        if (sub.Length == 0)
            return PyStr.Length(s) + 1;
        var n = 0;
        for (var at = s.IndexOf(sub, StringComparison.Ordinal); at >= 0; at = s.IndexOf(sub, at + sub.Length, StringComparison.Ordinal))
            n++;
        return n;
    }

    private static string? OptionalString(object? value, string callee) => value switch
    {
        null => null,
        string s => s,
        _ => throw TemplateException.Type($"{callee} arg must be None or str, not {PyOps.TypeName(value)}"),
    };

    private static string RequiredString(CallArguments args, int index, string name, string callee) =>
        args.Required(index, name, callee) as string ?? throw TemplateException.Type($"{callee}() argument '{name}' must be str");
}
