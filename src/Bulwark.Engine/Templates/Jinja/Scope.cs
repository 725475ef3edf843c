namespace Bulwark.Engine.Templates.Jinja;

/// <summary>
/// One frame of template variables. Jinja gives each for-loop iteration and each macro call
/// its own frame (assignments there do not leak out); <c>if</c> blocks share their parent's.
/// </summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> _variables = new(StringComparer.Ordinal);

    public Scope? Parent { get; } = parent;

    public bool TryGet(string name, out object? value)
    {
        for (var scope = this; scope is not null; scope = scope.Parent)
        {
            if (scope._variables.TryGetValue(name, out value))
                return true;
        }
        value = null;
        return false;
    }

    public bool HasLocal(string name) => _variables.ContainsKey(name);

    public object? Get(string name) => TryGet(name, out var value) ? value : Undefined.Variable(name);

    public void Set(string name, object? value) => _variables[name] = value;
}
