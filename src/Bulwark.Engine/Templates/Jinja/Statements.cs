using System.Runtime.CompilerServices;

namespace Bulwark.Engine.Templates.Jinja;

internal enum Flow
{
    Normal,
    Break,
    Continue,
}

/// <summary>A statement (or run of text) of the template; executing it writes output.</summary>
internal abstract class Statement
{
    public int Line { get; set; }

    public abstract Flow Execute(Renderer r, Scope scope);

    public static Flow ExecuteAll(List<Statement> body, Renderer r, Scope scope)
    {
        // A hostile template can nest blocks deeply through recursive macros; fail cleanly
        // instead of letting the stack overflow take the process down.
        RuntimeHelpers.EnsureSufficientExecutionStack();
        foreach (var statement in body)
        {
            r.CountOperation();
            var flow = statement.Execute(r, scope);
            if (flow != Flow.Normal)
                return flow;
        }
        return Flow.Normal;
    }
}

internal sealed class TextStatement(string text) : Statement
{
    public override Flow Execute(Renderer r, Scope scope)
    {
        r.Write(text);
        return Flow.Normal;
    }
}

internal sealed class OutputStatement(Expr expr) : Statement
{
    public override Flow Execute(Renderer r, Scope scope)
    {
        r.Write(PyFormat.Str(expr.Evaluate(r, scope)));
        return Flow.Normal;
    }
}

internal sealed class IfStatement(List<(Expr Test, List<Statement> Body)> branches, List<Statement>? otherwise) : Statement
{
    public override Flow Execute(Renderer r, Scope scope)
    {
        foreach (var (test, body) in branches)
        {
            if (PyOps.IsTrue(test.Evaluate(r, scope)))
                return ExecuteAll(body, r, scope);
        }
        return otherwise is null ? Flow.Normal : ExecuteAll(otherwise, r, scope);
    }
}

internal sealed class ForStatement(Target target, Expr iterable, Expr? filter, List<Statement> body, List<Statement>? otherwise) : Statement
{
    public override Flow Execute(Renderer r, Scope scope)
    {
        var source = PyOps.Iterate(iterable.Evaluate(r, scope));
        IReadOnlyList<object?> items = source;
        if (filter is not null)
        {
            var kept = new List<object?>();
            foreach (var item in source)
            {
                r.CountIteration();
                var probe = new Scope(scope);
                target.Assign(r, probe, item);
                if (PyOps.IsTrue(filter.Evaluate(r, probe)))
                    kept.Add(item);
            }
            items = kept;
        }

        var loop = new LoopState(items);
        for (var i = 0; i < items.Count; i++)
        {
            r.CountIteration();
            loop.Index0 = i;
            // Each iteration starts from a fresh frame: Jinja resets loop-body assignments per iteration.
            var frame = new Scope(scope);
            frame.Set("loop", loop);
            target.Assign(r, frame, items[i]);
            if (ExecuteAll(body, r, frame) == Flow.Break)
                break;
        }
        if (items.Count == 0 && otherwise is not null)
            ExecuteAll(otherwise, r, scope);
        return Flow.Normal;
    }
}

internal sealed class SetStatement(Target target, Expr value) : Statement
{
    public override Flow Execute(Renderer r, Scope scope)
    {
        target.Assign(r, scope, value.Evaluate(r, scope));
        return Flow.Normal;
    }
}

/// <summary><c>{% set name | filters %}body{% endset %}</c>: assigns the rendered body.</summary>
internal sealed class SetBlockStatement(Target target, List<(string Name, ArgumentList Args)> filters, List<Statement> body) : Statement
{
    public override Flow Execute(Renderer r, Scope scope)
    {
        object? value = r.Capture(() => ExecuteAll(body, r, scope));
        foreach (var (name, args) in filters)
            value = Filters.Apply(r, name, value, args.Evaluate(r, scope));
        target.Assign(r, scope, value);
        return Flow.Normal;
    }
}

/// <summary><c>{% filter name %}body{% endfilter %}</c>: writes the filtered rendering of the body.</summary>
internal sealed class FilterBlockStatement(List<(string Name, ArgumentList Args)> filters, List<Statement> body) : Statement
{
    public override Flow Execute(Renderer r, Scope scope)
    {
        object? value = r.Capture(() => ExecuteAll(body, r, scope));
        foreach (var (name, args) in filters)
            value = Filters.Apply(r, name, value, args.Evaluate(r, scope));
        r.Write(PyFormat.Str(value));
        return Flow.Normal;
    }
}

internal sealed class MacroStatement(string name, List<(string Name, Expr? Default)> parameters, List<Statement> body) : Statement
{
    public override Flow Execute(Renderer r, Scope scope)
    {
        scope.Set(name, new Macro(name, parameters, body, scope));
        return Flow.Normal;
    }
}

internal sealed class LoopControlStatement(Flow flow) : Statement
{
    public override Flow Execute(Renderer r, Scope scope) => flow;
}

/// <summary>A block that only groups its body, such as <c>{% generation %}</c>.</summary>
internal sealed class BlockStatement(List<Statement> body) : Statement
{
    public override Flow Execute(Renderer r, Scope scope) => ExecuteAll(body, r, scope);
}
