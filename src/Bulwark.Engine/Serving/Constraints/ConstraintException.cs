namespace Bulwark.Engine.Serving.Constraints;

/// <summary>
/// A constraint (schema, regular expression, choice list) that cannot be enforced or is over a limit.
/// <see cref="Path"/> is where in the constraint (<c>$.properties.name</c>), <see cref="Keyword"/> the
/// keyword or part refused; the message says what and why, with the limit where there is one.
/// </summary>
public sealed class ConstraintException(string path, string keyword, string message) : Exception(message)
{
    public string Path { get; } = path;

    public string Keyword { get; } = keyword;
}
