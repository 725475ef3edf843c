
namespace Bulwark.Engine.Templates.Jinja;

/// <summary>An expression of the template language; evaluating it yields a template value.</summary>
internal abstract class Expr
{
    public abstract object? Evaluate(Renderer r, Scope scope);
}

internal sealed class ConstExpr(object? value) : Expr
{
    public object? Value { get; } = value;

    public override object? Evaluate(Renderer r, Scope scope) => Value;
}

internal sealed class NameExpr(string name) : Expr
{
    public string Name { get; } = name;

    public override object? Evaluate(Renderer r, Scope scope) => scope.Get(Name);
}

internal sealed class ListExpr(List<Expr> items, bool tuple) : Expr
{
    public List<Expr> Items { get; } = items;

    public bool IsTuple { get; } = tuple;

    public override object? Evaluate(Renderer r, Scope scope)
    {
        var values = Items.Select(item => item.Evaluate(r, scope));
        return IsTuple ? new PyTuple(values) : new PyList(values);
    }
}

internal sealed class DictExpr(List<(Expr Key, Expr Value)> items) : Expr
{
    public override object? Evaluate(Renderer r, Scope scope)
    {
        var dict = new PyDict();
        foreach (var (key, value) in items)
            dict.Put(key.Evaluate(r, scope), value.Evaluate(r, scope));
        return dict;
    }
}

/// <summary><c>obj.name</c>: Jinja tries the attribute first, then the item.</summary>
internal sealed class AttributeExpr(Expr target, string name) : Expr
{
    public override object? Evaluate(Renderer r, Scope scope) => MemberAccess.GetAttribute(target.Evaluate(r, scope), name);
}

/// <summary><c>obj[key]</c>: Jinja tries the item first, then the attribute.</summary>
internal sealed class ItemExpr(Expr target, Expr key) : Expr
{
    public override object? Evaluate(Renderer r, Scope scope) => MemberAccess.GetItem(target.Evaluate(r, scope), key.Evaluate(r, scope));
}

internal sealed class SliceExpr(Expr target, Expr? start, Expr? stop, Expr? step) : Expr
{
    public override object? Evaluate(Renderer r, Scope scope)
    {
        var value = target.Evaluate(r, scope);
        return MemberAccess.Slice(value, Bound(start, r, scope), Bound(stop, r, scope), Bound(step, r, scope) ?? 1);
    }

    private static long? Bound(Expr? expr, Renderer r, Scope scope) => expr?.Evaluate(r, scope) switch
    {
        null => null,
        long l => l,
        bool b => b ? 1 : 0,
        var other => throw TemplateException.Type($"slice indices must be integers or None, not {PyOps.TypeName(other)}"),
    };
}

/// <summary>Arguments as written at a call site; evaluated at each call.</summary>
internal sealed class ArgumentList(List<Expr> positional, List<(string Name, Expr Value)> named)
{
    public static ArgumentList Empty { get; } = new([], []);

    public CallArguments Evaluate(Renderer r, Scope scope, object? first = null, bool hasFirst = false)
    {
        var values = new List<object?>(positional.Count + 1);
        if (hasFirst)
            values.Add(first);
        foreach (var arg in positional)
            values.Add(arg.Evaluate(r, scope));
        var kw = named.Select(n => new KeyValuePair<string, object?>(n.Name, n.Value.Evaluate(r, scope))).ToList();
        return new CallArguments(values, kw);
    }
}

internal sealed class CallExpr(Expr callee, ArgumentList args) : Expr
{
    public override object? Evaluate(Renderer r, Scope scope)
    {
        var target = callee.Evaluate(r, scope);
        var evaluated = args.Evaluate(r, scope);
        if (target is Undefined u)
            throw u.Fail();
        if (target is not ITemplateCallable callable)
            throw TemplateException.Type($"'{PyOps.TypeName(target)}' object is not callable");
        r.CountOperation();
        return callable.Call(r, evaluated);
    }
}

internal sealed class FilterExpr(Expr value, string name, ArgumentList args) : Expr
{
    public override object? Evaluate(Renderer r, Scope scope)
    {
        var input = value.Evaluate(r, scope);
        r.CountOperation();
        return Filters.Apply(r, name, input, args.Evaluate(r, scope));
    }
}

internal sealed class TestExpr(Expr value, string name, ArgumentList args, bool negated) : Expr
{
    public override object? Evaluate(Renderer r, Scope scope)
    {
        var input = value.Evaluate(r, scope);
        var result = TestFunctions.Apply(r, name, input, args.Evaluate(r, scope));
        return negated ? !result : result;
    }
}

internal sealed class UnaryExpr(string op, Expr operand) : Expr
{
    public override object? Evaluate(Renderer r, Scope scope)
    {
        var value = operand.Evaluate(r, scope);
        return op == "not" ? !PyOps.IsTrue(value) : PyArithmetic.Negate(value, op == "-");
    }
}

internal sealed class BinaryExpr(string op, Expr left, Expr right) : Expr
{
    public override object? Evaluate(Renderer r, Scope scope)
    {
        switch (op)
        {
            case "and":
                var a = left.Evaluate(r, scope);
                return PyOps.IsTrue(a) ? right.Evaluate(r, scope) : a;
            case "or":
                var o = left.Evaluate(r, scope);
                return PyOps.IsTrue(o) ? o : right.Evaluate(r, scope);
            case "~":
                return PyArithmetic.Concat(r, left.Evaluate(r, scope), right.Evaluate(r, scope));
            default:
                return PyArithmetic.Binary(r, op, left.Evaluate(r, scope), right.Evaluate(r, scope));
        }
    }
}

/// <summary>A comparison chain <c>a &lt; b &lt;= c</c>, Python style: each link must hold.</summary>
internal sealed class CompareExpr(Expr first, List<(string Op, Expr Operand)> rest) : Expr
{
    public override object? Evaluate(Renderer r, Scope scope)
    {
        var left = first.Evaluate(r, scope);
        foreach (var (op, operand) in rest)
        {
            var right = operand.Evaluate(r, scope);
            if (!Holds(op, left, right))
                return false;
            left = right;
        }
        return true;
    }

    private static bool Holds(string op, object? a, object? b) => op switch
    {
        "==" => PyOps.Equal(a, b),
        "!=" => !PyOps.Equal(a, b),
        "in" => PyOps.Contains(b, a),
        "notin" => !PyOps.Contains(b, a),
        "<" => PyOps.Compare(a, b, op) < 0,
        "<=" => PyOps.Compare(a, b, op) <= 0,
        ">" => PyOps.Compare(a, b, op) > 0,
        ">=" => PyOps.Compare(a, b, op) >= 0,
        _ => throw new InvalidOperationException("unknown comparison " + op),
    };
}

/// <summary><c>a if cond else b</c>; without <c>else</c> the false branch is undefined.</summary>
internal sealed class ConditionalExpr(Expr test, Expr then, Expr? otherwise) : Expr
{
    public override object? Evaluate(Renderer r, Scope scope) =>
        PyOps.IsTrue(test.Evaluate(r, scope))
            ? then.Evaluate(r, scope)
            : otherwise is null ? Undefined.WithHint("the inline if-expression on line evaluated to false and no else section was defined.") : otherwise.Evaluate(r, scope);
}
