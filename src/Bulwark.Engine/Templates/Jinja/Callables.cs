namespace Bulwark.Engine.Templates.Jinja;

/// <summary>A value a template may call: a macro, a global such as <c>namespace</c>, or a whitelisted method.</summary>
internal interface ITemplateCallable
{
    string Name { get; }

    object? Call(Renderer renderer, CallArguments args);
}

/// <summary>Positional and keyword arguments of one call, with Python-style binding to parameter names.</summary>
internal sealed class CallArguments(List<object?> positional, List<KeyValuePair<string, object?>> named)
{
    public static CallArguments None { get; } = new([], []);

    public List<object?> Positional { get; } = positional;

    public List<KeyValuePair<string, object?>> Named { get; } = named;

    /// <summary>The argument at <paramref name="index"/> or named <paramref name="name"/>, else <paramref name="fallback"/>.</summary>
    public object? Get(int index, string name, object? fallback)
    {
        if (index < Positional.Count)
            return Positional[index];
        foreach (var (key, value) in Named)
        {
            if (key == name)
                return value;
        }
        return fallback;
    }

    public bool Has(int index, string name) => index < Positional.Count || Named.Exists(kv => kv.Key == name);

    /// <summary>Rejects arguments the callee does not take, as Python would with a TypeError.</summary>
    public void Check(string callee, params string[] parameters)
    {
        if (Positional.Count > parameters.Length)
            throw TemplateException.Type($"{callee}() takes at most {parameters.Length} arguments ({Positional.Count} given)");
        foreach (var (key, _) in Named)
        {
            var at = Array.IndexOf(parameters, key);
            if (at < 0)
                throw TemplateException.Type($"{callee}() got an unexpected keyword argument '{key}'");
            if (at < Positional.Count)
                throw TemplateException.Type($"{callee}() got multiple values for argument '{key}'");
        }
    }

    public object? Required(int index, string name, string callee) =>
        Has(index, name) ? Get(index, name, null) : throw TemplateException.Type($"{callee}() missing required argument '{name}'");
}

/// <summary>A function implemented in C# and exposed under a fixed name.</summary>
internal sealed class BuiltinFunction(string name, Func<Renderer, CallArguments, object?> body) : ITemplateCallable
{
    public string Name { get; } = name;

    public object? Call(Renderer renderer, CallArguments args) => body(renderer, args);
}

/// <summary>A whitelisted method bound to its receiver, e.g. <c>message.content.strip</c>.</summary>
internal sealed class BoundMethod(object receiver, string name) : ITemplateCallable
{
    public string Name { get; } = name;

    public object Receiver { get; } = receiver;

    public object? Call(Renderer renderer, CallArguments args) => Methods.Invoke(renderer, Receiver, Name, args);
}
