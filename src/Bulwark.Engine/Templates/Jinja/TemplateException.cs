namespace Bulwark.Engine.Templates.Jinja;

/// <summary>What kind of failure stopped a template; the server maps every kind to a 400-class error.</summary>
public enum TemplateErrorKind
{
    /// <summary>The template source is not valid in the supported Jinja subset.</summary>
    Syntax,

    /// <summary>The template called <c>raise_exception(message)</c>; the message is the template's own.</summary>
    Raised,

    /// <summary>An undefined variable, attribute or element was used where a value is required.</summary>
    Undefined,

    /// <summary>An operation got a value of the wrong type (Python's <c>TypeError</c> and kin).</summary>
    Type,

    /// <summary>The sandbox refused an attribute or operation.</summary>
    Security,

    /// <summary>A limit in <see cref="TemplateLimits"/> was reached.</summary>
    Limit,
}

/// <summary>
/// A template failed to parse or render. The message never carries .NET internals or host paths,
/// so it is safe to return to the client as the reason for a 400 response.
/// </summary>
public sealed class TemplateException : Exception
{
    public TemplateException(TemplateErrorKind kind, string message, int line = 0)
        : base(message)
    {
        Kind = kind;
        Line = line;
    }

    public TemplateErrorKind Kind { get; }

    /// <summary>1-based line in the template source where the error was found, or 0 when unknown.</summary>
    public int Line { get; }

    /// <summary>True when the template itself raised the error with <c>raise_exception</c>.</summary>
    public bool RaisedByTemplate => Kind == TemplateErrorKind.Raised;

    internal static TemplateException Type(string message) => new(TemplateErrorKind.Type, message);

    internal static TemplateException Limit(string message) => new(TemplateErrorKind.Limit, message);

    internal static TemplateException Security(string message) => new(TemplateErrorKind.Security, message);
}
