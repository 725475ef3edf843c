using System.Runtime.CompilerServices;

namespace Bulwark.Engine.Templates.Jinja;

/// <summary>
/// A <c>{% macro %}</c>: called like a function, it renders its body in a fresh frame whose
/// parent is the frame it was defined in, and returns the rendering as a string.
/// </summary>
internal sealed class Macro(string name, List<(string Name, Expr? Default)> parameters, List<Statement> body, Scope definedIn) : ITemplateCallable
{
    public string Name { get; } = name;

    public object? Call(Renderer r, CallArguments args)
    {
        RuntimeHelpers.EnsureSufficientExecutionStack();
        r.EnterCall(Name);
        try
        {
            var frame = new Scope(definedIn);
            var extra = new PyList();
            for (var i = 0; i < args.Positional.Count; i++)
            {
                if (i < parameters.Count)
                    frame.Set(parameters[i].Name, args.Positional[i]);
                else
                    extra.Add(args.Positional[i]);
            }
            var kwargs = new PyDict();
            foreach (var (key, value) in args.Named)
            {
                var at = parameters.FindIndex(p => p.Name == key);
                if (at < 0)
                    kwargs.Put(key, value);
                else if (at < args.Positional.Count)
                    throw TemplateException.Type($"macro '{Name}' got multiple values for argument '{key}'");
                else
                    frame.Set(key, value);
            }
            foreach (var (param, fallback) in parameters)
            {
                if (!frame.HasLocal(param))
                    frame.Set(param, fallback is null ? Undefined.Variable(param) : fallback.Evaluate(r, frame));
            }
            frame.Set("varargs", extra);
            frame.Set("kwargs", kwargs);
            return r.Capture(() => Statement.ExecuteAll(body, r, frame));
        }
        finally
        {
            r.ExitCall();
        }
    }
}
