namespace Bulwark.Engine.Templates.Jinja;

// Template values are plain .NET objects with Python meaning:
//   null = None, bool, long = int, double = float, string = str,
//   PyList = list, PyTuple = tuple, PyDict = dict (insertion-ordered), Undefined,
//   Namespace, LoopState and ITemplateCallable (macros, globals, whitelisted bound methods).
// Nothing else ever enters a rendering, which is what keeps the sandbox closed: there is no
// path from a value to reflection or to an arbitrary .NET member.

/// <summary>Python's list.</summary>
internal class PyList : List<object?>
{
    public PyList()
    {
    }

    public PyList(IEnumerable<object?> items)
        : base(items)
    {
    }
}

/// <summary>Python's tuple; behaves as a list except in its repr.</summary>
internal sealed class PyTuple : PyList
{
    public PyTuple(IEnumerable<object?> items)
        : base(items)
    {
    }
}

/// <summary>Python's dict: insertion-ordered (the .NET dictionary keeps insertion order while nothing is removed, and template values are never removed from), keys compared with Python equality.</summary>
internal sealed class PyDict : Dictionary<object, object?>
{
    public PyDict()
        : base(PyKeyComparer.Instance)
    {
    }

    /// <summary>Python's <c>d[key] = value</c>: a new key goes last, an existing key keeps its place.</summary>
    public void Put(object? key, object? value)
    {
        if (key is null or PyList or PyDict or Undefined)
            throw TemplateException.Type($"unhashable or unsupported dict key of type '{PyOps.TypeName(key)}'");
        this[key] = value;
    }
}

/// <summary>Jinja's <c>namespace()</c>: the one object whose attributes a template may assign.</summary>
internal sealed class Namespace
{
    public PyDict Attributes { get; } = new();
}

/// <summary>
/// Jinja's Undefined: what a missing variable, attribute or element evaluates to. Printing it
/// gives "", iterating it gives nothing, its truth is false; anything else fails with Jinja's
/// message. An unsafe-attribute undefined fails on every use.
/// </summary>
internal sealed class Undefined
{
    private readonly object? _owner;
    private readonly bool _hasOwner;
    private readonly object? _name;
    private readonly string? _hint;

    private Undefined(object? name, object? owner, bool hasOwner, string? unsafeMessage, string? hint = null)
    {
        _name = name;
        _owner = owner;
        _hasOwner = hasOwner;
        UnsafeMessage = unsafeMessage;
        _hint = hint;
    }

    public string? UnsafeMessage { get; }

    public static Undefined Variable(string name) => new(name, null, false, null);

    public static Undefined Member(object? owner, object? name) => new(name, owner, true, null);

    public static Undefined Unsafe(object? owner, string attribute) =>
        new(attribute, owner, true, $"access to attribute '{attribute}' of '{PyOps.TypeName(owner)}' object is unsafe.");

    public static Undefined WithHint(string hint) => new(null, null, false, null, hint);

    public string Message
    {
        get
        {
            if (UnsafeMessage is not null)
                return UnsafeMessage;
            if (_hint is not null)
                return _hint;
            if (!_hasOwner)
                return $"{PyFormat.Repr(_name)} is undefined";
            if (_name is not string)
                return $"{ObjectTypeRepr(_owner)} has no element {PyFormat.Repr(_name)}";
            return $"{PyFormat.Repr(ObjectTypeRepr(_owner))} has no attribute {PyFormat.Repr(_name)}";
        }
    }

    public TemplateException Fail() => UnsafeMessage is not null
        ? TemplateException.Security(UnsafeMessage)
        : new TemplateException(TemplateErrorKind.Undefined, Message);

    private static string ObjectTypeRepr(object? owner) => owner is null ? "None" : $"{PyOps.TypeName(owner)} object";
}

/// <summary>Jinja's <c>loop</c> variable inside a for loop.</summary>
internal sealed class LoopState(IReadOnlyList<object?> items)
{
    public int Index0 { get; set; }

    public object? Get(string name) => name switch
    {
        "index0" => (long)Index0,
        "index" => (long)(Index0 + 1),
        "revindex0" => (long)(items.Count - Index0 - 1),
        "revindex" => (long)(items.Count - Index0),
        "first" => Index0 == 0,
        "last" => Index0 == items.Count - 1,
        "length" => (long)items.Count,
        "depth" => 1L,
        "depth0" => 0L,
        "previtem" => Index0 > 0 ? items[Index0 - 1] : Undefined.WithHint("there is no previous item"),
        "nextitem" => Index0 + 1 < items.Count ? items[Index0 + 1] : Undefined.WithHint("there is no next item"),
        "cycle" => new BuiltinFunction("loop.cycle", (_, args) =>
        {
            if (args.Positional.Count == 0)
                throw TemplateException.Type("no items for cycling given");
            return args.Positional[Index0 % args.Positional.Count];
        }),
        _ => Undefined.Member(this, name),
    };
}
