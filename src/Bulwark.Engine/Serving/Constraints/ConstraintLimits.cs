namespace Bulwark.Engine.Serving.Constraints;

/// <summary>
/// Bounds on what a client-supplied constraint may cost to compile and to run. Each is checked while
/// compiling, so an expensive constraint is refused in bounded time with the limit named.
/// </summary>
public sealed record ConstraintLimits
{
    /// <summary>Nesting of a JSON schema (subschemas within subschemas).</summary>
    public int MaxSchemaDepth { get; init; } = 32;

    /// <summary>Values in one <c>enum</c>.</summary>
    public int MaxEnumValues { get; init; } = 256;

    /// <summary>Properties of one object schema.</summary>
    public int MaxProperties { get; init; } = 256;

    /// <summary>Branches of one <c>anyOf</c>/<c>oneOf</c>.</summary>
    public int MaxBranches { get; init; } = 64;

    /// <summary>Bound of <c>minLength</c>/<c>maxLength</c>/<c>minItems</c>/<c>maxItems</c> and of regex <c>{n,m}</c> (each step is a grammar rule).</summary>
    public int MaxRepeat { get; init; } = 1000;

    /// <summary>Characters of one regular expression (<c>guided_regex</c>, <c>pattern</c>).</summary>
    public int MaxRegexLength { get; init; } = 1000;

    /// <summary>States of the automaton a regular expression compiles to; a pattern that needs more is refused.</summary>
    public int MaxDfaStates { get; init; } = 2000;

    /// <summary>Strings in <c>guided_choice</c>.</summary>
    public int MaxChoices { get; init; } = 256;

    /// <summary>Characters of one <c>guided_choice</c> string.</summary>
    public int MaxChoiceLength { get; init; } = 1000;

    /// <summary>Grammar items a constraint may compile to (memory of the compiled form).</summary>
    public int MaxGrammarItems { get; init; } = 200_000;

    /// <summary>Nesting of <c>$ref</c>s followed while compiling: recursive schemas are unrolled this deep, no deeper.</summary>
    public int MaxRefDepth { get; init; } = 8;

    public static ConstraintLimits Default { get; } = new();
}
