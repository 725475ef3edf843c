namespace Bulwark.Engine.Templates.Jinja;

/// <summary>
/// Python's value semantics for the operations a template can write: truth, equality,
/// ordering, membership, iteration and length. Arithmetic is in <see cref="PyArithmetic"/>,
/// attribute and item access in <see cref="MemberAccess"/>.
/// </summary>
internal static class PyOps
{
    private const int MaxDepth = 200;

    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        PyTuple => "tuple",
        PyList => "list",
        PyDict => "dict",
        Undefined => "Undefined",
        Namespace => "Namespace",
        LoopState => "LoopContext",
        Macro => "Macro",
        BoundMethod => "builtin_function_or_method",
        ITemplateCallable => "function",
        _ => value.GetType().Name,
    };

    public static bool IsTrue(object? value) => value switch
    {
        null => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        PyList list => list.Count > 0,
        PyDict dict => dict.Count > 0,
        Undefined u => u.UnsafeMessage is null ? false : throw u.Fail(),
        _ => true,
    };

    public static bool IsNumber(object? value) => value is long or double or bool;

    public static double ToDouble(object? value) => value switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw TemplateException.Type($"expected a number, got '{TypeName(value)}'"),
    };

    public static bool Equal(object? a, object? b) => Equal(a, b, 0);

    private static bool Equal(object? a, object? b, int depth)
    {
        if (depth > MaxDepth)
            throw TemplateException.Limit($"value nesting is deeper than {MaxDepth} levels");
        if (a is Undefined ua && ua.UnsafeMessage is not null)
            throw ua.Fail();
        if (b is Undefined ub && ub.UnsafeMessage is not null)
            throw ub.Fail();
        switch (a)
        {
            case null: return b is null;
            case Undefined: return b is Undefined;
            case string sa: return b is string sb && string.Equals(sa, sb, StringComparison.Ordinal);
            case long or bool or double when IsNumber(b):
                if (a is double || b is double)
                    return ToDouble(a) == ToDouble(b);
                return ToLong(a) == ToLong(b);
            case PyList la:
                if (b is not PyList lb || (a is PyTuple) != (b is PyTuple) || la.Count != lb.Count)
                    return false;
                for (var i = 0; i < la.Count; i++)
                {
                    if (!Equal(la[i], lb[i], depth + 1))
                        return false;
                }
                return true;
            case PyDict da:
                if (b is not PyDict db || da.Count != db.Count)
                    return false;
                foreach (var (k, v) in da)
                {
                    if (!db.TryGetValue(k, out var other) || !Equal(v, other, depth + 1))
                        return false;
                }
                return true;
            default: return ReferenceEquals(a, b);
        }
    }

    public static long ToLong(object? value) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw TemplateException.Type($"expected an integer, got '{TypeName(value)}'"),
    };

    /// <summary>Python's ordering for <c>&lt;</c>, <c>&gt;</c>, <c>&lt;=</c>, <c>&gt;=</c>: numbers, strings, lists.</summary>
    public static int Compare(object? a, object? b, string op)
    {
        if (a is Undefined ua)
            throw ua.Fail();
        if (b is Undefined ub)
            throw ub.Fail();
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double)
                return ToDouble(a).CompareTo(ToDouble(b));
            return ToLong(a).CompareTo(ToLong(b));
        }
        if (a is string sa && b is string sb)
            return Math.Sign(string.CompareOrdinal(sa, sb));
        if (a is PyList la && b is PyList lb && (a is PyTuple) == (b is PyTuple))
        {
            for (var i = 0; i < Math.Min(la.Count, lb.Count); i++)
            {
                if (!Equal(la[i], lb[i]))
                    return Compare(la[i], lb[i], op);
            }
            return la.Count.CompareTo(lb.Count);
        }
        throw TemplateException.Type($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    /// <summary>Python's <c>item in container</c>.</summary>
    public static bool Contains(object? container, object? item)
    {
        switch (container)
        {
            case string s:
                if (item is not string sub)
                    throw TemplateException.Type($"'in <string>' requires string as left operand, not {TypeName(item)}");
                return s.Contains(sub, StringComparison.Ordinal);
            case PyList list:
                return list.Exists(x => Equal(x, item));
            case PyDict dict:
                return item is not null && item is not PyList && item is not PyDict && dict.ContainsKey(item);
            case Undefined u:
                return u.UnsafeMessage is null ? false : throw u.Fail();
            default:
                throw TemplateException.Type($"argument of type '{TypeName(container)}' is not iterable");
        }
    }

    /// <summary>Python's <c>iter(value)</c>, materialized: templates iterate small collections.</summary>
    public static IReadOnlyList<object?> Iterate(object? value) => value switch
    {
        PyList list => list,
        PyDict dict => dict.Keys.ToList<object?>(),
        string s => PyStr.CodePoints(s),
        Undefined u => u.UnsafeMessage is null ? [] : throw u.Fail(),
        _ => throw TemplateException.Type($"'{TypeName(value)}' object is not iterable"),
    };

    public static bool IsIterable(object? value) => value is PyList or PyDict or string or Undefined;

    /// <summary>Python's <c>len(value)</c>.</summary>
    public static long Length(object? value) => value switch
    {
        string s => PyStr.Length(s),
        PyList list => list.Count,
        PyDict dict => dict.Count,
        Undefined u => u.UnsafeMessage is null ? 0 : throw u.Fail(),
        _ => throw TemplateException.Type($"object of type '{TypeName(value)}' has no len()"),
    };
}
