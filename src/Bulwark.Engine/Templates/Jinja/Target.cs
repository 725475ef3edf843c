
namespace Bulwark.Engine.Templates.Jinja;

/// <summary>The left side of <c>set</c> or <c>for</c>: a name, a tuple of targets, or <c>namespace.attribute</c>.</summary>
internal abstract class Target
{
    public abstract void Assign(Renderer r, Scope scope, object? value);
}

internal sealed class NameTarget(string name) : Target
{
    public override void Assign(Renderer r, Scope scope, object? value) => scope.Set(name, value);
}

internal sealed class TupleTarget(List<Target> items) : Target
{
    public override void Assign(Renderer r, Scope scope, object? value)
    {
        var values = PyOps.Iterate(value);
        if (values.Count != items.Count)
        {
            var problem = values.Count > items.Count ? "too many values to unpack" : "not enough values to unpack";
            throw TemplateException.Type($"{problem} (expected {items.Count}, got {values.Count})");
        }
        for (var i = 0; i < items.Count; i++)
            items[i].Assign(r, scope, values[i]);
    }
}

/// <summary><c>{% set ns.attr = value %}</c>: only namespace objects accept attribute assignment.</summary>
internal sealed class NamespaceAttributeTarget(string name, string attribute) : Target
{
    public override void Assign(Renderer r, Scope scope, object? value)
    {
        if (scope.Get(name) is not Namespace ns)
            throw new TemplateException(TemplateErrorKind.Type, "cannot assign attribute on non-namespace object");
        ns.Attributes.Put(attribute, value);
    }
}
