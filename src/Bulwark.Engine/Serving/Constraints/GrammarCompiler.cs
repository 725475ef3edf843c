using System.Text.Json;

namespace Bulwark.Engine.Serving.Constraints;

/// <summary>The constraints a request may ask for, each compiled to a <see cref="Grammar"/>; a constraint that cannot be enforced throws <see cref="ConstraintException"/>.</summary>
public static class GrammarCompiler
{
    /// <summary>Any JSON value.</summary>
    public static Grammar Json() => JsonSchemaCompiler.AnyJson(objectOnly: false);

    /// <summary>Any JSON object (<c>response_format: json_object</c>).</summary>
    public static Grammar JsonObject() => JsonSchemaCompiler.AnyJson(objectOnly: true);

    /// <summary>JSON valid against <paramref name="schema"/>.</summary>
    public static Grammar JsonSchema(JsonElement schema, ConstraintLimits? limits = null, string path = "$") =>
        JsonSchemaCompiler.Compile(schema, limits, path);

    /// <summary>Text the whole of which matches <paramref name="pattern"/>.</summary>
    public static Grammar Regex(string pattern, ConstraintLimits? limits = null, string path = "$")
    {
        limits ??= ConstraintLimits.Default;
        var b = new GrammarBuilder(limits.MaxGrammarItems);
        var start = RegexAutomaton.Compile(b, pattern, path, limits, RegexAutomaton.Mode.Raw, search: false);
        return b.Build(start, "regex");
    }

    /// <summary>Exactly one of <paramref name="choices"/>.</summary>
    public static Grammar Choice(IReadOnlyList<string> choices, ConstraintLimits? limits = null, string path = "$")
    {
        limits ??= ConstraintLimits.Default;
        if (choices.Count == 0) throw new ConstraintException(path, "choice", $"{path}: at least one choice is needed");
        if (choices.Count > limits.MaxChoices)
            throw new ConstraintException(path, "choice", $"{path}: at most {limits.MaxChoices} choices are allowed; got {choices.Count}");
        var b = new GrammarBuilder(limits.MaxGrammarItems);
        var r = b.Rule();
        for (var i = 0; i < choices.Count; i++)
        {
            var c = choices[i];
            if (c.Length == 0) throw new ConstraintException($"{path}[{i}]", "choice", $"{path}[{i}]: a choice must not be empty");
            if (c.Length > limits.MaxChoiceLength)
                throw new ConstraintException($"{path}[{i}]", "choice", $"{path}[{i}]: a choice must be at most {limits.MaxChoiceLength} characters; got {c.Length}");
            b.Alt(r, b.Literal(c));
        }
        return b.Build(r, "choice");
    }
}
