namespace Bulwark.Engine.Templates.Jinja;

/// <summary>Jinja's test functions, the names <c>value is name(args)</c> may use (<c>defined</c>, <c>none</c>, <c>divisibleby</c>, ...), with Jinja2's semantics.</summary>
internal static class TestFunctions
{
    private delegate bool Test(Renderer r, object? value, CallArguments args);

    private static readonly Dictionary<string, Test> All = new(StringComparer.Ordinal)
    {
        ["defined"] = (_, v, _) => v is not Undefined,
        ["undefined"] = (_, v, _) => v is Undefined,
        ["none"] = (_, v, _) => v is null,
        ["boolean"] = (_, v, _) => v is bool,
        ["true"] = (_, v, _) => v is true,
        ["false"] = (_, v, _) => v is false,
        // Python's bool is an int, so Jinja's "number" accepts True; "integer" does not.
        ["number"] = (_, v, _) => v is long or double or bool,
        ["integer"] = (_, v, _) => v is long,
        ["float"] = (_, v, _) => v is double,
        ["string"] = (_, v, _) => v is string,
        ["mapping"] = (_, v, _) => v is PyDict,
        ["iterable"] = (_, v, _) => PyOps.IsIterable(v),
        ["sequence"] = (_, v, _) => v is string or PyList or PyDict or Undefined,
        ["callable"] = (_, v, _) => v is ITemplateCallable,
        ["sameas"] = (_, v, a) => SameAs(v, Arg(a, "sameas")),
        ["escaped"] = (_, _, _) => false,
        ["lower"] = (_, v, _) => v is string s && (bool)Methods.Invoke(null!, s, "islower", CallArguments.None)!,
        ["upper"] = (_, v, _) => v is string s && (bool)Methods.Invoke(null!, s, "isupper", CallArguments.None)!,
        ["odd"] = (_, v, _) => PyOps.ToLong(v) % 2 != 0,
        ["even"] = (_, v, _) => PyOps.ToLong(v) % 2 == 0,
        ["divisibleby"] = (_, v, a) => PyOps.ToLong(Arg(a, "divisibleby")) is var n && n != 0 ? PyOps.ToLong(v) % n == 0 : throw TemplateException.Type("integer division or modulo by zero"),
        ["in"] = (_, v, a) => PyOps.Contains(Arg(a, "in"), v),
        ["eq"] = (_, v, a) => PyOps.Equal(v, Arg(a, "eq")),
        ["equalto"] = (_, v, a) => PyOps.Equal(v, Arg(a, "equalto")),
        ["=="] = (_, v, a) => PyOps.Equal(v, Arg(a, "==")),
        ["ne"] = (_, v, a) => !PyOps.Equal(v, Arg(a, "ne")),
        ["!="] = (_, v, a) => !PyOps.Equal(v, Arg(a, "!=")),
        ["lt"] = (_, v, a) => PyOps.Compare(v, Arg(a, "lt"), "<") < 0,
        ["lessthan"] = (_, v, a) => PyOps.Compare(v, Arg(a, "lessthan"), "<") < 0,
        ["<"] = (_, v, a) => PyOps.Compare(v, Arg(a, "<"), "<") < 0,
        ["le"] = (_, v, a) => PyOps.Compare(v, Arg(a, "le"), "<=") <= 0,
        ["<="] = (_, v, a) => PyOps.Compare(v, Arg(a, "<="), "<=") <= 0,
        ["gt"] = (_, v, a) => PyOps.Compare(v, Arg(a, "gt"), ">") > 0,
        ["greaterthan"] = (_, v, a) => PyOps.Compare(v, Arg(a, "greaterthan"), ">") > 0,
        [">"] = (_, v, a) => PyOps.Compare(v, Arg(a, ">"), ">") > 0,
        ["ge"] = (_, v, a) => PyOps.Compare(v, Arg(a, "ge"), ">=") >= 0,
        [">="] = (_, v, a) => PyOps.Compare(v, Arg(a, ">="), ">=") >= 0,
    };

    public static bool Exists(string name) => All.ContainsKey(name);

    public static bool Apply(Renderer r, string name, object? value, CallArguments args)
    {
        if (!All.TryGetValue(name, out var test))
            throw new TemplateException(TemplateErrorKind.Syntax, $"No test named '{name}'.");
        return test(r, value, args);
    }

    private static object? Arg(CallArguments a, string test) =>
        a.Positional.Count > 0 ? a.Positional[0] : throw TemplateException.Type($"test '{test}' needs one argument");

    private static bool SameAs(object? a, object? b) => a is null ? b is null
        : a is bool or long or double or string ? PyOps.Equal(a, b) && a.GetType() == b?.GetType()
        : ReferenceEquals(a, b);
}
