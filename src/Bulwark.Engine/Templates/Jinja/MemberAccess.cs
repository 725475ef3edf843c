namespace Bulwark.Engine.Templates.Jinja;

/// <summary>
/// Attribute and item access, the sandbox's front door. Only the methods listed in
/// <see cref="Methods"/> are reachable on strings, lists and dicts; names starting with an
/// underscore are refused outright, as Jinja's SandboxedEnvironment refuses them; nothing
/// reaches .NET reflection because no value carries a .NET object beyond the ones in Values.cs.
/// </summary>
internal static class MemberAccess
{
    /// <summary><c>obj.name</c>: the attribute (a whitelisted method), else the item, else undefined.</summary>
    public static object? GetAttribute(object? target, string name)
    {
        if (target is Undefined u)
            throw u.Fail();
        if (name.StartsWith('_'))
            return target is PyDict d && d.TryGetValue(name, out var hidden) && !IsDunder(name) ? hidden : Undefined.Unsafe(target, name);
        if (Methods.Lookup(target, name) is { } method)
            return method;
        return target switch
        {
            PyDict dict => dict.TryGetValue(name, out var value) ? value : Undefined.Member(target, name),
            Namespace ns => ns.Attributes.TryGetValue(name, out var attr) ? attr : Undefined.Member(target, name),
            LoopState loop => loop.Get(name),
            _ => Undefined.Member(target, name),
        };
    }

    /// <summary><c>obj[key]</c>: the item, else (for a string key) the attribute, else undefined.</summary>
    public static object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case Undefined u:
                throw u.Fail();
            case PyDict dict when key is not null and not PyList and not PyDict and not Undefined:
                if (dict.TryGetValue(key, out var value))
                    return value;
                break;
            case PyList list when key is long or bool:
                var index = PyOps.ToLong(key);
                if (index < 0)
                    index += list.Count;
                if (index >= 0 && index < list.Count)
                    return list[(int)index];
                return Undefined.Member(target, key);
            case string s when key is long or bool:
                return PyStr.Index(s, PyOps.ToLong(key)) ?? Undefined.Member(target, key);
        }
        if (key is Undefined uk && uk.UnsafeMessage is not null)
            throw uk.Fail();
        return key is string name ? GetAttribute(target, name) : Undefined.Member(target, key);
    }

    public static object? Slice(object? target, long? start, long? stop, long step) => target switch
    {
        Undefined u => throw u.Fail(),
        string s => PyStr.Slice(s, start, stop, step),
        PyTuple t => new PyTuple(PySlice.Indices(t.Count, start, stop, step).Select(i => t[i])),
        PyList list => new PyList(PySlice.Indices(list.Count, start, stop, step).Select(i => list[i])),
        _ => throw TemplateException.Type($"'{PyOps.TypeName(target)}' object is not subscriptable"),
    };

    private static bool IsDunder(string name) => name.Length > 4 && name.StartsWith("__", StringComparison.Ordinal) && name.EndsWith("__", StringComparison.Ordinal);
}
